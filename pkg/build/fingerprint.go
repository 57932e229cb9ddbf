package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/images"
	"github.com/poststack/poststack/pkg/safefile"
)

// A fingerprint is a digest of what an image was built from. ps-build
// records it with the image ID in Options.StateDir after each build; when
// the tag still holds that ID and the inputs still give that digest, the
// build is skipped: stepping an engine through a dozen cached layers costs
// a second or more per image, the check costs one inspect. It is kept out
// of the image itself so that inputs that change only in time (a git
// checkout) do not change the image ID, which would rebuild every image
// built FROM it.

// record is what StateDir holds per image reference.
type record struct {
	Ref         string `json:"ref"`
	Engine      string `json:"engine"`
	Fingerprint string `json:"fingerprint"`
	ID          string `json:"id"`
}

func recordPath(stateDir, engineName, ref string) string {
	sum := sha256.Sum256([]byte(engineName + "\x00" + NormalizeRef(ref)))
	return filepath.Join(stateDir, hex.EncodeToString(sum[:12])+".json")
}

func readRecord(stateDir, engineName, ref string) (record, bool) {
	var rec record
	data, err := os.ReadFile(recordPath(stateDir, engineName, ref))
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Ref != ref || rec.Engine != engineName {
		return record{}, false
	}
	return rec, true
}

func writeRecord(stateDir string, rec record) error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return atomicfile.Write(recordPath(stateDir, rec.Engine, rec.Ref), atomicfile.Public, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// fingerprint digests an image's inputs: the engine, labels, build
// arguments, the Dockerfile and build context, and the IDs of the images it
// is built FROM (bases maps each FROM reference to the ID the engine has
// for it now). Context files count by path, mode, size and modification
// time, as make does, over the files the engine is sent: those the
// context's .containerignore/.dockerignore lets through, less exclude
// (see engine.WalkContext).
func fingerprint(engineName string, im *Image, labels map[string]string, bases map[string]string, exclude []string) (string, error) {
	h := sha256.New()
	field := func(k, v string) { fmt.Fprintf(h, "%s\x00%s\x00", k, v) }
	// Format 2: the context is what engine.WalkContext sends; images of
	// format 1 could hold logs/ and .env files, so none of them is kept.
	field("format", "2")
	field("engine", engineName)
	field("ref", im.Ref)
	for _, k := range sortedKeys(labels) {
		field("label", k+"="+labels[k])
	}
	for _, k := range sortedKeys(im.BuildArgs) {
		field("arg", k+"="+im.BuildArgs[k])
	}
	for _, f := range im.Froms {
		if f.Image != "" && !f.Internal {
			field("from", f.Image+"@"+bases[f.Image])
		}
	}
	if im.Builtin {
		if err := hashEmbedded(h, im.Def); err != nil {
			return "", err
		}
	} else {
		data, err := safefile.ReadFile(im.Context, im.Dockerfile)
		if err != nil {
			return "", err
		}
		field("dockerfile", string(data))
		if err := hashContext(h, im.Context, exclude); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashEmbedded(h hash.Hash, def images.Definition) error {
	return fs.WalkDir(images.FS(), def.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(images.FS(), p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "file\x00%s\x00%d\x00", path.Base(p), len(data))
		h.Write(data)
		return nil
	})
}

// hashContext adds the stat data of every entry of the build context dir
// that the engine is sent.
func hashContext(h hash.Hash, dir string, exclude []string) error {
	return engine.WalkContext(dir, exclude, func(rel string, info fs.FileInfo) error {
		if info.IsDir() {
			// A directory's size and time change with its entries, which
			// are hashed themselves (editors' swap files come and go).
			fmt.Fprintf(h, "dir\x00%s\x00%o\x00", rel, info.Mode())
			return nil
		}
		fmt.Fprintf(h, "ctx\x00%s\x00%o\x00%d\x00%d\x00", rel, info.Mode(), info.Size(), info.ModTime().UnixNano())
		return nil
	})
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
