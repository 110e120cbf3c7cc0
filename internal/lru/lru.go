// Package lru is a bounded map that forgets its least recently used entry:
// the per-target state of the /probe endpoint, whose targets come from
// service discovery, must not grow with them.
package lru

import "container/list"

// Default is the bound of a Map whose Max is not set.
const Default = 10000

// Map is a map bounded to SetMax entries (Default when unset) that forgets
// the least recently used one. The zero value is ready. Not safe for
// concurrent use: each owner holds its own lock.
type Map[V any] struct {
	max int
	l   list.List
	m   map[string]*list.Element
}

type item[V any] struct {
	key string
	v   V
}

func (c *Map[V]) limit() int {
	if c.max <= 0 {
		return Default
	}
	return c.max
}

// Get returns the value of key and marks it used.
func (c *Map[V]) Get(key string) (V, bool) {
	if e, ok := c.m[key]; ok {
		c.l.MoveToFront(e)
		return e.Value.(*item[V]).v, true
	}
	var zero V
	return zero, false
}

// Peek returns the value of key without marking it used.
func (c *Map[V]) Peek(key string) (V, bool) {
	if e, ok := c.m[key]; ok {
		return e.Value.(*item[V]).v, true
	}
	var zero V
	return zero, false
}

// Put sets key's value, marks it used and forgets the least recently used
// entries beyond the bound.
func (c *Map[V]) Put(key string, v V) {
	if c.m == nil {
		c.m = map[string]*list.Element{}
	}
	if e, ok := c.m[key]; ok {
		e.Value.(*item[V]).v = v
		c.l.MoveToFront(e)
		return
	}
	c.m[key] = c.l.PushFront(&item[V]{key: key, v: v})
	c.trim()
}

// GetOrPut returns key's value, made by mk when there is none.
func (c *Map[V]) GetOrPut(key string, mk func() V) V {
	if v, ok := c.Get(key); ok {
		return v
	}
	v := mk()
	c.Put(key, v)
	return v
}

// Delete forgets key.
func (c *Map[V]) Delete(key string) {
	if e, ok := c.m[key]; ok {
		c.l.Remove(e)
		delete(c.m, key)
	}
}

// Len is the number of entries.
func (c *Map[V]) Len() int { return len(c.m) }

// SetMax changes the bound, forgetting what no longer fits.
func (c *Map[V]) SetMax(n int) {
	c.max = n
	c.trim()
}

func (c *Map[V]) trim() {
	for len(c.m) > c.limit() {
		e := c.l.Back()
		c.l.Remove(e)
		delete(c.m, e.Value.(*item[V]).key)
	}
}
