package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// SetDigest names a migration set by what a database migrated with it ends up holding: each
// migration's version, name and checksum, the rollback SQL the ledger stores, and the schema
// and table the ledger lives in. Caches of migrated databases (pgtest's templates, ps-env's
// migrated data directories) key their entries by it, so a change to any of these builds a new
// entry. The digest is hex SHA-256; a rollback file that cannot be read
// again is a *SourceError naming it (see Script.Text).
func SetDigest(migs []*Migration, schema, table string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "migration set 1\nledger %q %q\n", schema, table)
	for _, m := range migs {
		fmt.Fprintf(h, "%d %q %s", m.Version, m.Name, m.Checksum)
		if m.Down != nil {
			text, err := m.Down.Text()
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, " down %x", sha256.Sum256([]byte(text)))
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
