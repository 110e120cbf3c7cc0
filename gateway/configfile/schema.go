package configfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// Schema is the part of a running gateway's own config schema (openclaw's
// `config.schema` RPC, JSON Schema draft-07, ~2.1 MB) that tells which keys
// the gateway accepts: per object, its properties, its pattern properties
// and whether other keys are allowed. Descriptions, titles and value rules
// are dropped when it is compiled, so a few hundred KB stay in memory.
//
// The gateway refuses to start (exit 78) on a key its strict objects do not
// know; checking the file against the schema of the version that runs tells
// before the next restart (docs/local-state.md#schema-strictness).
type Schema struct {
	Version string
	root    *schemaNode
}

type schemaNode struct {
	props    map[string]*schemaNode
	patterns []patternProp
	// extra is the schema for other keys; open says other keys are
	// allowed without one. A node with neither refuses them.
	extra *schemaNode
	open  bool
	items *schemaNode
	// object says the node describes objects at all: values of other
	// types are not checked here.
	object bool
}

type patternProp struct {
	re   *regexp.Regexp
	node *schemaNode
}

const (
	// maxSchemaSize bounds the payload: 2.1 MB in openclaw 2026.9.6.
	maxSchemaSize = 16 << 20
	// maxSchemaNodes bounds the compiled tree (2026.9.6: a few thousand).
	maxSchemaNodes = 200_000
	// maxUnknownKeys bounds what one check reports.
	maxUnknownKeys = 50
)

// CompileSchema compiles a config.schema payload: {"schema": {...},
// "version": "..."} or the schema itself.
func CompileSchema(b []byte) (*Schema, error) {
	if len(b) > maxSchemaSize {
		return nil, fmt.Errorf("config schema: larger than %d bytes", maxSchemaSize)
	}
	if err := fileio.CheckDepth(b, fileio.MaxDepth); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	var payload struct {
		Schema  json.RawMessage `json:"schema"`
		Version string          `json:"version"`
	}
	if err := json.Unmarshal(b, &payload); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	raw := payload.Schema
	if len(raw) == 0 {
		raw = b
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	c := &schemaCompiler{doc: doc, seen: map[string]*schemaNode{}}
	root := c.compile(doc, 0)
	if c.err != nil {
		return nil, c.err
	}
	if !root.object {
		return nil, errors.New("config schema: the root does not describe an object")
	}
	return &Schema{Version: payload.Version, root: root}, nil
}

type schemaCompiler struct {
	doc   map[string]any
	seen  map[string]*schemaNode // compiled $refs, which may recurse
	nodes int
	err   error
}

func (c *schemaCompiler) compile(v any, depth int) *schemaNode {
	n := &schemaNode{}
	c.nodes++
	if c.nodes > maxSchemaNodes || depth > fileio.MaxDepth {
		if c.err == nil {
			c.err = errors.New("config schema: too large to compile")
		}
		return n
	}
	m, ok := v.(map[string]any)
	if !ok {
		n.open = true // `true` or something unknown: anything goes
		return n
	}
	if ref, ok := m["$ref"].(string); ok {
		return c.ref(ref, depth)
	}
	switch t := m["type"].(type) {
	case string:
		n.object = t == "object"
	case []any:
		for _, e := range t {
			n.object = n.object || e == "object"
		}
	case nil:
		// No type: objects pass, with any keys unless the keywords
		// below say otherwise.
		if m["const"] == nil && m["enum"] == nil {
			n.object = true
		}
	}
	if props, ok := m["properties"].(map[string]any); ok {
		n.object = true
		n.props = make(map[string]*schemaNode, len(props))
		for k, pv := range props {
			n.props[k] = c.compile(pv, depth+1)
		}
	}
	if pats, ok := m["patternProperties"].(map[string]any); ok {
		n.object = true
		for p, pv := range pats {
			re, err := regexp.Compile(p)
			if err != nil {
				n.open = true // a pattern Go cannot read: do not guess
				continue
			}
			n.patterns = append(n.patterns, patternProp{re: re, node: c.compile(pv, depth+1)})
		}
	}
	switch ap := m["additionalProperties"].(type) {
	case bool:
		n.open = ap
	case map[string]any:
		n.extra = c.compile(ap, depth+1)
	case nil:
		n.open = true // draft-07's default
	}
	if _, ok := m["propertyNames"]; ok && n.props == nil && n.extra == nil {
		n.open = true // records keyed by names the schema constrains by value
	}
	if items, ok := m["items"]; ok {
		n.items = c.compile(items, depth+1)
	}
	// A value may match any branch: a key is allowed when one branch
	// allows it.
	for _, kw := range []string{"anyOf", "oneOf", "allOf"} {
		if branches, ok := m[kw].([]any); ok {
			for _, b := range branches {
				n.merge(c.compile(b, depth+1))
			}
		}
	}
	return n
}

// ref resolves a local reference (#/$defs/x, #/definitions/x).
func (c *schemaCompiler) ref(ref string, depth int) *schemaNode {
	if n, ok := c.seen[ref]; ok {
		return n
	}
	n := &schemaNode{open: true} // until compiled; a cycle sees it open
	c.seen[ref] = n
	target, ok := c.lookup(ref)
	if !ok {
		return n
	}
	*n = *c.compile(target, depth+1)
	return n
}

func (c *schemaCompiler) lookup(ref string) (any, bool) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = c.doc
	for _, p := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// merge widens n by another branch.
func (n *schemaNode) merge(o *schemaNode) {
	if !o.object && o.items == nil {
		if o.open && !n.object {
			n.open = true
		}
		return
	}
	if o.object {
		if !n.object {
			// The first object branch: n had no key rules of its own.
			n.open = false
		}
		n.object = true
	}
	for k, v := range o.props {
		if n.props == nil {
			n.props = map[string]*schemaNode{}
		}
		if old, ok := n.props[k]; ok {
			merged := &schemaNode{}
			merged.merge(old)
			merged.merge(v)
			n.props[k] = merged
		} else {
			n.props[k] = v
		}
	}
	n.patterns = append(n.patterns, o.patterns...)
	if o.extra != nil {
		n.extra = o.extra
	}
	n.open = n.open || o.open && o.object
	if o.items != nil && n.items == nil {
		n.items = o.items
	}
}

// UnknownKeys lists the keys of the config (as read, $include resolved)
// that the schema refuses, as dotted paths ("session.historyLimit",
// "agents.list[].foo"), sorted, at most 50.
func (s *Schema) UnknownKeys(rep *Report) []string {
	if s == nil || rep == nil || rep.tree == nil {
		return nil
	}
	seen := map[string]bool{}
	s.root.check(rep.tree, "", seen, 0)
	out := make([]string, 0, len(seen))
	for k := range seen {
		// A key is a label value: never with a secret pasted into it.
		if rep.redact != nil {
			k = rep.redact(k)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	if len(out) > maxUnknownKeys {
		out = out[:maxUnknownKeys]
	}
	return out
}

func (n *schemaNode) check(v any, path string, unknown map[string]bool, depth int) {
	if n == nil || depth > fileio.MaxDepth || len(unknown) > maxUnknownKeys {
		return
	}
	switch val := v.(type) {
	case map[string]any:
		if !n.object {
			return
		}
		for k, child := range val {
			p := k
			if path != "" {
				p = path + "." + k
			}
			sub, ok := n.props[k]
			if !ok {
				for _, pp := range n.patterns {
					if pp.re.MatchString(k) {
						sub, ok = pp.node, true
						break
					}
				}
			}
			if !ok && n.extra != nil {
				sub, ok = n.extra, true
			}
			if !ok {
				if !n.open {
					unknown[p] = true
				}
				continue
			}
			sub.check(child, p, unknown, depth+1)
		}
	case []any:
		if n.items == nil {
			return
		}
		for _, e := range val {
			n.items.check(e, path+"[]", unknown, depth+1)
		}
	}
}
