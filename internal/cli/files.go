package cli

import "github.com/poststack/poststack/pkg/safefile"

// readProjectFile reads a file the project supplies (./.env): a regular file
// inside root, of bounded size (see safefile).
func readProjectFile(root, path string) ([]byte, error) { return safefile.ReadFile(root, path) }

// readUserFile reads a file the user named (--config-file): any path, but a
// regular file of bounded size.
func readUserFile(path string) ([]byte, error) { return safefile.ReadFile("", path) }
