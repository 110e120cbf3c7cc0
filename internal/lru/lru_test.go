package lru

import "testing"

func TestLRUForgetsLeastRecentlyUsed(t *testing.T) {
	var c Map[int]
	c.SetMax(2)
	c.Put("a", 1)
	c.Put("b", 2)
	if _, ok := c.Get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.Put("c", 3) // evicts b
	if _, ok := c.Peek("b"); ok {
		t.Error("b kept past the bound; the least recently used must go")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Peek(k); !ok {
			t.Errorf("%s forgotten", k)
		}
	}
	if c.Len() != 2 {
		t.Errorf("len %d, want 2", c.Len())
	}
	c.SetMax(1)
	if c.Len() != 1 {
		t.Errorf("after setMax(1): len %d", c.Len())
	}
	if _, ok := c.Peek("c"); !ok {
		t.Error("setMax kept the wrong entry")
	}
}
