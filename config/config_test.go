package config

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, doc, err string
		gateways       int
	}{
		{name: "empty", doc: "", gateways: 0},
		{name: "two", doc: "gateways:\n- name: a\n  url: ws://127.0.0.1:1\n- name: b\n  profile: work\n  token_file: /t\n", gateways: 2},
		{name: "missing name", doc: "gateways:\n- url: ws://x\n", err: "gateways[0]: name is required"},
		{name: "duplicate", doc: "gateways:\n- name: a\n- name: a\n", err: `duplicate name "a"`},
		{name: "typo", doc: "gateway:\n- name: a\n", err: "field gateway not found"},
		{name: "not YAML", doc: "gateways: [", err: "yaml"},
		{name: "wrong type", doc: "gateways: 3\n", err: "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(cfg.Gateways) != tc.gateways {
				t.Fatalf("got %+v, %v", cfg, err)
			}
		})
	}
}
