// Command go-module-zip writes a Go module the way a module proxy serves it, so that
// GOPROXY=file://OUT (ahead of the usual proxy) lets `go get MODULE@VERSION` fetch it before it
// is published: OUT/<escaped module path>/@v/<version>.{zip,mod,info} and @v/list. The zip is
// made by golang.org/x/mod/zip, the code the go command itself uses, from the directory as it
// is on disk (run it on a clean checkout of the release commit).
//
//	go run . -dir ../../clients/go -version v0.1.0 -time 2026-01-02T15:04:05Z -out ../../dist/artifacts/go
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

func main() {
	dir := flag.String("dir", "", "the module's directory (where its go.mod is)")
	version := flag.String("version", "", "the module version, e.g. v0.1.0")
	stamp := flag.String("time", "", "the version's time for the .info file (RFC 3339), e.g. the release commit's")
	out := flag.String("out", "", "the proxy directory to write into")
	flag.Parse()
	if *dir == "" || *version == "" || *stamp == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *version, *stamp, *out); err != nil {
		log.Fatal(err)
	}
}

func run(dir, version, stamp, out string) error {
	goMod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	path := modfile.ModulePath(goMod)
	if path == "" {
		return fmt.Errorf("%s/go.mod names no module", dir)
	}
	mv := module.Version{Path: path, Version: version}
	if err := module.Check(path, version); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		return fmt.Errorf("-time: %w", err)
	}
	escPath, err := module.EscapePath(path)
	if err != nil {
		return err
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		return err
	}
	base := filepath.Join(out, filepath.FromSlash(escPath), "@v")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}

	zipPath := filepath.Join(base, escVersion+".zip")
	f, err := os.Create(zipPath)
	if err != nil {
		return err
	}
	if err := modzip.CreateFromDir(f, mv, dir); err != nil {
		f.Close()
		return fmt.Errorf("zip %s: %w", mv, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(base, escVersion+".mod"), goMod, 0o644); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, t.UTC()})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(base, escVersion+".info"), append(info, '\n'), 0o644); err != nil {
		return err
	}
	return addToList(filepath.Join(base, "list"), version, zipPath)
}

// addToList records version in the proxy's version list, once.
func addToList(list, version, zipPath string) error {
	old, err := os.ReadFile(list)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	versions := strings.Fields(string(old))
	if !slices.Contains(versions, version) {
		versions = append(versions, version)
	}
	if err := os.WriteFile(list, []byte(strings.Join(versions, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Println(zipPath)
	return nil
}
