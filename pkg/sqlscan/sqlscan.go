// Package sqlscan splits PostgreSQL scripts into statements and maps PostgreSQL error positions
// back to lines and columns of the script.
//
// The splitter follows psql's lexer (src/bin/psql/psqlscan.l) closely enough to agree with it on
// where statements end: quoted strings and identifiers, dollar quotes, nested comments,
// parentheses and the BEGIN ATOMIC … END bodies of SQL-standard functions all hide semicolons.
// It does not parse SQL; a text psql would split the same way is all it promises.
package sqlscan

import (
	"strings"
	"unicode/utf8"
)

// Statement is one SQL statement of a text.
type Statement struct {
	// SQL is the exact source text from the statement's first token to the end of its last
	// token: comments between tokens are kept, surrounding whitespace and comments and the
	// terminating ';' are not. It is what is sent to the server, so an error position reported
	// for it can be mapped back with Position.
	SQL string
	// Offset is the byte offset of SQL in the text.
	Offset int
	// Line and Col are the 1-based position of SQL's first character; Col counts runes.
	Line, Col int
}

// Position converts a PostgreSQL error position in s.SQL (1-based, in characters, as
// pgconn.PgError.Position) into the 1-based line and column (runes) of the whole text s came
// from.
func (s Statement) Position(pos int) (line, col int) {
	l, c := CharPosition(s.SQL, pos)
	if l == 1 {
		return s.Line, s.Col + c - 1
	}
	return s.Line + l - 1, c
}

// scanner holds the psql-like lexer state of the statement being scanned.
type scanner struct {
	text string
	// parenDepth and beginDepth are psql's: a ';' ends a statement only when both are zero.
	parenDepth, beginDepth int
	// identCount and idents implement psql's heuristic for "CREATE [OR REPLACE]
	// {FUNCTION|PROCEDURE}": the first letters of the leading identifiers, when they are one of
	// create/or/replace/function/procedure.
	identCount int
	idents     [4]byte
	// start is the byte offset of the statement's first token, -1 before it; end is the offset
	// just past its last token.
	start, end int
}

func (s *scanner) reset() {
	s.parenDepth, s.beginDepth, s.identCount = 0, 0, 0
	s.idents = [4]byte{}
	s.start, s.end = -1, -1
}

// token records a token occupying text[from:to].
func (s *scanner) token(from, to int) {
	if s.start < 0 {
		s.start = from
	}
	s.end = to
}

// Split splits text into statements at top-level ';'. It understands '…' strings (a doubled
// quote escapes a quote), E'…' strings with backslash escapes, "…" identifiers (a doubled
// double quote escapes one), $tag$…$tag$ dollar quotes (tags are identifiers or empty; $1 is a
// parameter, not a tag), -- line comments, nested /* … */ comments, parentheses, and
// BEGIN ATOMIC … END bodies of SQL-standard function bodies (semicolons inside do not end the
// statement). Empty statements (only whitespace and comments) are dropped. A final statement
// without ';' is included; an unterminated string, quote or comment runs to the end of the text.
func Split(text string) []Statement {
	var stmts []Statement
	s := scanner{text: text}
	s.reset()
	emit := func() {
		if s.start >= 0 {
			stmts = append(stmts, Statement{SQL: text[s.start:s.end], Offset: s.start})
		}
		s.reset()
	}
	n := len(text)
	i := 0
	for i < n {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < n && text[i+1] == '-':
			i = skipLineComment(text, i+2)
		case c == '/' && i+1 < n && text[i+1] == '*':
			i = skipBlockComment(text, i+2)
		case c == '\'':
			j := skipQuoted(text, i+1, '\'')
			s.token(i, j)
			i = j
		case c == '"':
			j := skipQuoted(text, i+1, '"')
			s.token(i, j)
			i = j
		case c == '$':
			j := scanDollar(text, i)
			s.token(i, j)
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < n && isIdentCont(text[j]) {
				j++
			}
			if j == i+1 && (c == 'e' || c == 'E') && j < n && text[j] == '\'' {
				k := skipEString(text, j+1)
				s.token(i, k)
				i = k
				continue
			}
			s.identifier(text[i:j])
			s.token(i, j)
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < n && text[j] >= '0' && text[j] <= '9' {
				j++
			}
			s.token(i, j)
			i = j
		case c == '(':
			s.parenDepth++
			s.token(i, i+1)
			i++
		case c == ')':
			if s.parenDepth > 0 {
				s.parenDepth--
			}
			s.token(i, i+1)
			i++
		case c == ';':
			if s.parenDepth == 0 && s.beginDepth == 0 {
				emit()
			} else {
				s.token(i, i+1)
			}
			i++
		default:
			s.token(i, i+1)
			i++
		}
	}
	emit()
	setPositions(text, stmts)
	return stmts
}

// identifier applies psql's BEGIN … END tracking, which only runs inside
// CREATE [OR REPLACE] {FUNCTION|PROCEDURE} and outside parentheses.
func (s *scanner) identifier(word string) {
	if s.identCount < len(s.idents) {
		for _, kw := range [...]string{"create", "function", "procedure", "or", "replace"} {
			if strings.EqualFold(word, kw) {
				s.idents[s.identCount] = kw[0]
				break
			}
		}
	}
	s.identCount++
	id := s.idents
	if id[0] != 'c' || s.parenDepth != 0 {
		return
	}
	if !(id[1] == 'f' || id[1] == 'p' || (id[1] == 'o' && id[2] == 'r' && (id[3] == 'f' || id[3] == 'p'))) {
		return
	}
	switch {
	case strings.EqualFold(word, "begin"):
		s.beginDepth++
	case strings.EqualFold(word, "case"):
		// CASE also ends with END; it only matters inside a BEGIN.
		if s.beginDepth >= 1 {
			s.beginDepth++
		}
	case strings.EqualFold(word, "end"):
		if s.beginDepth > 0 {
			s.beginDepth--
		}
	}
}

// isIdentStart and isIdentCont are psql's ident_start and ident_cont; bytes ≥ 0x80 count as
// letters so that any UTF-8 letter works.
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

// isTagCont is psql's dolq_cont: identifier characters without '$'.
func isTagCont(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9'
}

func skipLineComment(text string, i int) int {
	for i < len(text) && text[i] != '\n' && text[i] != '\r' {
		i++
	}
	return i
}

// skipBlockComment returns the offset after the comment whose body starts at i; comments nest.
func skipBlockComment(text string, i int) int {
	depth := 1
	n := len(text)
	for i < n {
		j := strings.IndexByte(text[i:], '*')
		k := strings.IndexByte(text[i:], '/')
		if j < 0 && k < 0 {
			return n
		}
		// Only '*' and '/' matter; jump to the first of them.
		p := j
		if p < 0 || (k >= 0 && k < p) {
			p = k
		}
		i += p
		switch {
		case text[i] == '*' && i+1 < n && text[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		case text[i] == '/' && i+1 < n && text[i+1] == '*':
			depth++
			i += 2
		default:
			i++
		}
	}
	return n
}

// skipQuoted returns the offset after a '…' string or "…" identifier whose body starts at i;
// a doubled quote is an escaped quote.
func skipQuoted(text string, i int, q byte) int {
	for {
		j := strings.IndexByte(text[i:], q)
		if j < 0 {
			return len(text)
		}
		i += j + 1
		if i < len(text) && text[i] == q {
			i++
			continue
		}
		return i
	}
}

// skipEString returns the offset after an E'…' string whose body starts at i.
func skipEString(text string, i int) int {
	n := len(text)
	for i < n {
		switch text[i] {
		case '\\':
			i += 2
		case '\'':
			if i+1 < n && text[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1
		default:
			i++
		}
	}
	return n
}

// scanDollar returns the end of the token starting with the '$' at i: a whole dollar-quoted
// string, a $n parameter, or the lone '$' (as psql does for a '$' that starts no quote).
func scanDollar(text string, i int) int {
	n := len(text)
	j := i + 1
	if j < n && text[j] >= '0' && text[j] <= '9' {
		for j < n && text[j] >= '0' && text[j] <= '9' {
			j++
		}
		return j
	}
	if j < n && text[j] != '$' {
		if !isIdentStart(text[j]) {
			return i + 1
		}
		for j < n && isTagCont(text[j]) {
			j++
		}
		if j >= n || text[j] != '$' {
			return i + 1
		}
	}
	if j >= n {
		return i + 1
	}
	delim := text[i : j+1]
	k := strings.Index(text[j+1:], delim)
	if k < 0 {
		return n
	}
	return j + 1 + k + len(delim)
}

// setPositions fills Line and Col in one pass over text; stmts are in offset order.
func setPositions(text string, stmts []Statement) {
	line, col, off := 1, 1, 0
	for i := range stmts {
		seg := text[off:stmts[i].Offset]
		if nl := strings.Count(seg, "\n"); nl > 0 {
			line += nl
			col = 1 + utf8.RuneCountInString(seg[strings.LastIndexByte(seg, '\n')+1:])
		} else {
			col += utf8.RuneCountInString(seg)
		}
		off = stmts[i].Offset
		stmts[i].Line, stmts[i].Col = line, col
	}
}

// CharPosition converts a PostgreSQL error position (1-based, counted in characters of the
// query text, as pgconn.PgError.Position) into 1-based line and column (runes) of text.
// Positions before the text map to 1:1; positions past its end map to just after its last
// character.
func CharPosition(text string, pos int) (line, col int) {
	if pos < 1 {
		pos = 1
	}
	line, col = 1, 1
	chars := 0
	for _, r := range text {
		if chars == pos-1 {
			return line, col
		}
		chars++
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// LineCol converts a byte offset of text into 1-based line and column (runes). Offsets outside
// the text are clamped to it.
func LineCol(text string, byteOffset int) (line, col int) {
	if byteOffset < 0 {
		byteOffset = 0
	}
	if byteOffset > len(text) {
		byteOffset = len(text)
	}
	before := text[:byteOffset]
	line = 1 + strings.Count(before, "\n")
	return line, 1 + utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:])
}

// HasTransactionControl reports the first statement that controls the enclosing transaction:
// BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT or PREPARE TRANSACTION. Such a
// statement would commit or abandon the transaction a migration runs in. ROLLBACK TO
// [SAVEPOINT], COMMIT/ROLLBACK PREPARED (which act on another, prepared transaction) and BEGIN
// ATOMIC are not reported; statements inside DO blocks and function bodies are inside quotes
// and never seen as statements.
func HasTransactionControl(stmts []Statement) (Statement, bool) {
	for _, st := range stmts {
		w := leadingWords(st.SQL, 2)
		if len(w) == 0 {
			continue
		}
		second := ""
		if len(w) > 1 {
			second = w[1]
		}
		switch w[0] {
		case "begin":
			if second != "atomic" {
				return st, true
			}
		case "start", "prepare":
			if second == "transaction" {
				return st, true
			}
		case "commit", "rollback":
			if second != "to" && second != "prepared" {
				return st, true
			}
		case "end", "abort":
			return st, true
		}
	}
	return Statement{}, false
}

// leadingWords returns up to n lower-cased leading bare words of sql, skipping whitespace and
// comments; it stops at the first token that is not a word.
func leadingWords(sql string, n int) []string {
	var words []string
	i := 0
	for i < len(sql) && len(words) < n {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			i = skipLineComment(sql, i+2)
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			i = skipBlockComment(sql, i+2)
		case isIdentStart(c):
			j := i + 1
			for j < len(sql) && isIdentCont(sql[j]) {
				j++
			}
			words = append(words, strings.ToLower(sql[i:j]))
			i = j
		default:
			return words
		}
	}
	return words
}
