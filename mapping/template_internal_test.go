package mapping

import (
	"testing"
	"text/template"

	"github.com/stretchr/testify/require"
)

// TestSoleField: exactly the templates that print one field take Render's fast path; every
// other shape (pipes, functions, text around, conditionals, variables, nested fields,
// defined templates) is executed.
func TestSoleField(t *testing.T) {
	for src, want := range map[string]string{
		`{{ .uid }}`:                           "uid",
		`{{- .mail -}}`:                        "mail",
		`{{.sn}}`:                              "sn",
		`{{ .uid | lower }}`:                   "",
		`{{ lower .uid }}`:                     "",
		`x{{ .uid }}`:                          "",
		`{{ .uid }} `:                          "",
		`{{ if .uid }}{{ .uid }}{{ end }}`:     "",
		`{{ $x := .uid }}`:                     "",
		`{{ .a.b }}`:                           "",
		`{{ attr "uid" }}`:                     "",
		`{{ $.uid }}`:                          "",
		`plain`:                                "",
		`{{ define "x" }}y{{ end }}{{ .uid }}`: "",
	} {
		tm, err := template.New("t").Funcs(templateFuncs()).Parse(src)
		require.NoError(t, err, src)
		require.Equal(t, want, soleField(tm), src)
	}
	for src, want := range map[string]string{
		`{{ attr "entryUUID" }}`:               "entryUUID",
		`{{- attr "objectGUID" -}}`:            "objectGUID",
		`{{ attr "a" | lower }}`:               "",
		`{{ attr .name }}`:                     "",
		`{{ values "mail" }}`:                  "",
		`{{ attr "a" }}{{ attr "b" }}`:         "",
		`{{ .uid }}`:                           "",
		`{{ if true }}{{ attr "a" }}{{ end }}`: "",
	} {
		tm, err := template.New("t").Funcs(templateFuncs()).Parse(src)
		require.NoError(t, err, src)
		require.Equal(t, want, soleAttr(tm), src)
	}
}
