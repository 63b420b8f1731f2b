// Package buildtest builds the project's commands for tests that run them
// as real processes (to send them real signals, or to run them as a user
// would).
package buildtest

import (
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// Module is the project's module path; commands are Module + "/cmd/NAME".
const Module = "github.com/go-distributed-lock/go-distributed-lock"

// Build compiles the commands pkgs (import paths) into dir, each as the
// last element of its path. It returns go build's output with the error.
func Build(dir string, pkgs ...string) error {
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// Binary builds the command pkg into a directory of t's and returns the
// executable's path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	dir := t.TempDir()
	if err := Build(dir, pkg); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, path.Base(pkg))
}
