package bridge_test

import (
	"encoding"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/config"
)

// configKeys lists every key of the configuration file by reflection over the types it
// decodes into (the provisioners' target types included), as dotted TOML paths. Free-form
// tables (maps) are listed by their own path, with maps true.
func configKeys() (keys []string, maps map[string]bool) {
	maps = map[string]bool{}
	textual := reflect.TypeFor[encoding.TextUnmarshaler]()
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if tag == "-" || !f.IsExported() {
				continue
			}
			key := prefix + tag
			ft := f.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
			}
			switch {
			case reflect.PointerTo(ft).Implements(textual) || ft.Kind() != reflect.Struct && ft.Kind() != reflect.Map:
				keys = append(keys, key)
			case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String && ft.Elem().Kind() != reflect.String && !reflect.PointerTo(ft.Elem()).Implements(textual):
				keys = append(keys, key) // an inline table of tables: not in this file
			case ft.Kind() == reflect.Map:
				if f.Name == "UserMapping" || f.Name == "GroupMapping" || f.Name == "UserAttributes" || f.Name == "GroupAttributes" {
					maps[key] = true
				}
				keys = append(keys, key)
			default:
				walk(key+".", ft)
			}
		}
	}
	walk("", reflect.TypeFor[config.Config]())
	walk("provisioner.", reflect.TypeFor[config.Provisioner]())
	for _, newConfig := range bridge.Targets {
		walk("provisioner.", reflect.TypeOf(newConfig()))
	}
	slices.Sort(keys)
	return slices.Compact(keys), maps
}

// exampleKey is a key as etc/scimbridge.example.toml documents it.
type exampleKey struct {
	line int
	tag  string // "reload" or "restart"
	text string // the comment after the tag
}

var (
	tableRE = regexp.MustCompile(`^\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$`)
	keyRE   = regexp.MustCompile(`^(#\s*)?([a-z][a-z0-9_]*)\s*=\s*[^=]`)
	tagRE   = regexp.MustCompile(`#\s*\[(reload|restart)\](.*)$`)
)

// exampleKeys parses the example file: every key line (commented-out ones included) and
// every table header, with its tag; entries of free-form tables are not keys.
func exampleKeys(t *testing.T, maps map[string]bool) map[string][]exampleKey {
	t.Helper()
	raw, err := os.ReadFile("../etc/scimbridge.example.toml")
	require.NoError(t, err)
	out := map[string][]exampleKey{}
	table := ""
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		tag := func() (string, string) {
			m := tagRE.FindStringSubmatch(line)
			if m == nil {
				return "", ""
			}
			return m[1], strings.TrimSpace(m[2])
		}
		if m := tableRE.FindStringSubmatch(line); m != nil {
			table = m[1]
			if maps[table] {
				tg, text := tag()
				out[table] = append(out[table], exampleKey{line: i + 1, tag: tg, text: text})
			}
			continue
		}
		if maps[table] {
			continue
		}
		m := keyRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		tg, text := tag()
		out[table+"."+m[2]] = append(out[table+"."+m[2]], exampleKey{line: i + 1, tag: tg, text: text})
	}
	return out
}

// TestExampleDocumentsReloadOrRestart holds etc/scimbridge.example.toml to the reload code:
// it documents every key of the configuration, each marked [reload] or [restart], and the
// marks are what Reload does (RestartRules is the single source: a key whose change is
// refused unconditionally is [restart]; one refused only in some cases is [reload] and says
// when a restart is needed).
func TestExampleDocumentsReloadOrRestart(t *testing.T) {
	keys, maps := configKeys()
	documented := exampleKeys(t, maps)
	rules := map[string]bridge.RestartRule{}
	for _, r := range bridge.RestartRules() {
		rules[r.Key] = r
		_, ok := documented[r.Key]
		require.True(t, ok, "restart rule %q names a key the example does not document", r.Key)
	}
	for _, k := range keys {
		_, ok := documented[k]
		require.True(t, ok, "the example does not document %s", k)
	}
	for key, lines := range documented {
		require.Contains(t, keys, key, "the example documents %s, which is no configuration key", key)
		for _, ex := range lines {
			r, restart := rules[key]
			switch {
			case ex.tag == "":
				t.Errorf("line %d: %s says neither [reload] nor [restart]", ex.line, key)
			case restart && r.When == "":
				require.Equal(t, "restart", ex.tag, "line %d: %s needs a restart (RestartRules)", ex.line, key)
			case restart:
				require.Equal(t, "reload", ex.tag, "line %d: %s reloads except %s", ex.line, key, r.When)
				if !strings.Contains(ex.text, "restart") && !strings.Contains(ex.text, "as tls_cert_file") {
					t.Errorf("line %d: %s must say when it needs a restart (%s)", ex.line, key, r.When)
				}
			default:
				require.Equal(t, "reload", ex.tag, "line %d: %s reloads (it is not in RestartRules)", ex.line, key)
			}
		}
	}
}

// TestReadmeNamesTheRestartKeys: the README's configuration walk-through lists exactly the
// keys of RestartRules as the ones needing a restart, and each section's bullet says what a
// reload does with it.
func TestReadmeNamesTheRestartKeys(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(raw)
	start := strings.Index(readme, "## Configuration walk-through")
	require.GreaterOrEqual(t, start, 0)
	section := readme[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	para := section[strings.Index(section, "**Reload or restart.**"):]
	para = para[:strings.Index(para, "\n\n")]
	var listed []string
	for _, m := range regexp.MustCompile("`([a-z_]+(?:\\.[a-z_]+)+)`").FindAllStringSubmatch(para, -1) {
		listed = append(listed, m[1])
	}
	var want []string
	for _, r := range bridge.RestartRules() {
		want = append(want, r.Key)
	}
	require.ElementsMatch(t, want, listed, "the keys the README says need a restart")
	for _, bullet := range strings.Split(section, "\n- ")[1:] {
		if !strings.HasPrefix(bullet, "`[") {
			continue
		}
		require.Regexp(t, `(?i)reload|restart`, bullet, "the bullet %q says how its keys change", strings.SplitN(bullet, "\n", 2)[0])
	}
}
