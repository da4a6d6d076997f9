package bridge

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixedTables are the package-level variables the bridge may have: tables written once in
// the source and never changed at run time, and an error sentinel. Anything else at package
// level is state shared by every Bridge of the process (two daemons in one test binary, a
// daemon and a one-shot sync) and belongs in a Bridge field.
var fixedTables = map[string]bool{
	"Targets":            true, // the registry of target types
	"componentStarters":  true,
	"componentReloaders": true,
	"statusProviders":    true,
	"restartRules":       true, // the restart-only configuration keys
	"ErrNoDaemon":        true,
}

// TestNoPackageLevelState parses the package's own files: no package-level variable outside
// the fixed tables, no write to any of them, and no process-wide umask change (the control
// socket gets its mode without touching what every other goroutine creates meanwhile).
func TestNoPackageLevelState(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var checked int
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := parser.ParseFile(fset, name, src, 0)
		require.NoError(t, err)
		checked++
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					require.True(t, fixedTables[id.Name], "%s: package-level variable %s: make it a field of Bridge (or of the component)", fset.Position(id.Pos()), id.Name)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "syscall" && n.Sel.Name == "Umask" {
					t.Errorf("%s: syscall.Umask changes the mode of every file the process creates meanwhile", fset.Position(n.Pos()))
				}
			case *ast.AssignStmt:
				for _, lhs := range n.Lhs {
					if id := rootIdent(lhs); id != nil && fixedTables[id.Name] && id.Obj == nil {
						t.Errorf("%s: %s is a fixed table: it is never written at run time", fset.Position(lhs.Pos()), id.Name)
					}
				}
			}
			return true
		})
	}
	require.Positive(t, checked)
}

// rootIdent is the variable an assignment target starts from (x in x, x[i], x.f).
func rootIdent(e ast.Expr) *ast.Ident {
	for {
		switch v := e.(type) {
		case *ast.Ident:
			return v
		case *ast.IndexExpr:
			e = v.X
		case *ast.SelectorExpr:
			e = v.X
		default:
			return nil
		}
	}
}
