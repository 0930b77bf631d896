package testbroker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// StartMariaDB starts a throwaway MariaDB (the repository's test/support/start-mariadb.sh: a
// temp data dir, a free loopback port; NERVEBUS_TEST_MYSQL_URL names an existing server
// instead) and returns its URL, mysql://USER:PASS@127.0.0.1:PORT/ without a database. The
// server is stopped when the test ends.
func StartMariaDB(t testing.TB) string {
	t.Helper()
	script := filepath.Join(repoRoot(t), "test", "support", "start-mariadb.sh")
	dir := filepath.Join(os.TempDir(), "nervebus-go-mariadb-"+strings.ReplaceAll(t.Name(), "/", "_"))
	_ = exec.Command("bash", script, "--stop", dir).Run()
	out, err := exec.Command("bash", script, dir).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("start MariaDB: %v\n%s", err, msg)
	}
	t.Cleanup(func() { _ = exec.Command("bash", script, "--stop", dir).Run() })
	return strings.TrimSpace(string(out))
}

// repoRoot is the checkout the broker's build belongs to (three levels above dist/src/cli/main.js).
func repoRoot(t testing.TB) string {
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(brokerMain(t)))))
}
