package testimage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FetchCommand is the command that puts the test photos in place; Photo
// names it when it skips.
const FetchCommand = "bash testdata/fetch-images.sh"

// Photo returns the bytes of the real photo testdata/images/<name> (for
// example "astronaut.png"), looked up from the module root, the nearest
// directory at or above the working directory that holds go.mod.
//
// The photos are not checked in (see testdata/README.md): when the file is
// missing, Photo skips the test and names FetchCommand. Any other failure,
// or a name that is not a plain file name, fails the test.
func Photo(tb testing.TB, name string) []byte {
	tb.Helper()
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		tb.Fatalf("testimage.Photo: %q is not a plain file name", name)
	}
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatalf("testimage.Photo: %v", err)
	}
	path := filepath.Join(root, "testdata", "images", name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		tb.Skipf("test photo %s is missing; fetch the photos with: (cd %s && %s)", path, root, FetchCommand)
	}
	if err != nil {
		tb.Fatalf("testimage.Photo: %v", err)
	}
	return data
}

// ModuleRoot walks up from the working directory to the first directory
// holding go.mod: where testdata/ and .cache/ are, for tests run from any
// package directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}
