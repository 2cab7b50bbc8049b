package integrity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const testPiece = MinPieceSize // 4 KiB: many pieces from little data

// randomBytes is n bytes of a seeded random stream.
func randomBytes(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// naiveTable computes a table the obvious way: one sha256 per slice of
// pieceSize bytes.
func naiveTable(data []byte, pieceSize int64) *Table {
	var ds []byte
	for off := int64(0); off < int64(len(data)); off += pieceSize {
		sum := sha256.Sum256(data[off:min(off+pieceSize, int64(len(data)))])
		ds = append(ds, sum[:]...)
	}
	return &Table{Blob: digest.FromBytes(data), Size: int64(len(data)), PieceSize: pieceSize, digests: ds}
}

// build writes data to a Builder in writes of the given lengths, the last
// one repeated.
func build(data []byte, pieceSize int64, lengths ...int) *Table {
	b := NewBuilder(digest.Canonical, pieceSize)
	for i := 0; len(data) > 0; i++ {
		n := min(lengths[min(i, len(lengths)-1)], len(data))
		if w, err := b.Write(data[:n]); w != n || err != nil {
			panic("Builder.Write failed")
		}
		data = data[n:]
	}
	return b.Table()
}

func TestBuilderAgainstNaive(t *testing.T) {
	sizes := map[string]int{
		"empty":            0,
		"one byte":         1,
		"piece-1":          testPiece - 1,
		"piece":            testPiece,
		"piece+1":          testPiece + 1,
		"many pieces":      37*testPiece + 123,
		"many whole":       16 * testPiece,
		"default piece+1":  DefaultPieceSize + 1,
		"two default, odd": 2*DefaultPieceSize + 4095,
	}
	writes := map[string][]int{
		"one write":    {math.MaxInt},
		"1 byte":       {1},
		"odd 7, 4093":  {7, 4093, 1, 8191, 3},
		"piece-sized":  {testPiece},
		"piece+1":      {testPiece + 1},
		"empty writes": {0, 5, 0, 100000},
	}
	for name, size := range sizes {
		data := randomBytes(uint64(size), size)
		for _, ps := range []int64{testPiece, DefaultPieceSize} {
			want := naiveTable(data, ps)
			for wname, lengths := range writes {
				if size > 20000 && wname == "1 byte" {
					continue // slow, and covered by the small sizes
				}
				got := build(data, ps, lengths...)
				if got.Blob != want.Blob || got.Size != want.Size || got.PieceSize != ps || !bytes.Equal(got.digests, want.digests) {
					t.Errorf("%s, pieces of %d, writes %s: table %s/%d/%d with %d pieces, want %s/%d with %d pieces",
						name, ps, wname, got.Blob, got.Size, got.PieceSize, got.Pieces(), want.Blob, want.Size, want.Pieces())
				}
				if n := (int64(size) + ps - 1) / ps; got.Pieces() != n {
					t.Errorf("%s, pieces of %d: %d pieces, want %d", name, ps, got.Pieces(), n)
				}
			}
		}
	}
}

func TestNewBuilderRefusesBadPieceSize(t *testing.T) {
	for _, ps := range []int64{0, -1, 1, MinPieceSize / 2, MinPieceSize + 1, 3 * MinPieceSize, 2 * MaxPieceSize} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewBuilder(%d) did not panic", ps)
				}
			}()
			NewBuilder(digest.Canonical, ps)
		}()
	}
}

func TestParseMarshalRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, testPiece - 1, testPiece, testPiece + 1, 10*testPiece + 5} {
		for _, ps := range []int64{MinPieceSize, DefaultPieceSize, MaxPieceSize} {
			tb := build(randomBytes(7, size), ps, 1000)
			raw := tb.Marshal()
			if want := headerLen + len(tb.Blob.String()) + 32*int(tb.Pieces()); len(raw) != want {
				t.Errorf("size %d, pieces of %d: %d bytes, want %d", size, ps, len(raw), want)
			}
			got, err := Parse(raw)
			if err != nil {
				t.Fatalf("size %d, pieces of %d: Parse: %v", size, ps, err)
			}
			if got.Blob != tb.Blob || got.Size != tb.Size || got.PieceSize != tb.PieceSize || got.Pieces() != tb.Pieces() || !bytes.Equal(got.Marshal(), raw) {
				t.Errorf("size %d, pieces of %d: round trip changed the table", size, ps)
			}
			if got.Digest() != digest.FromBytes(raw) {
				t.Errorf("Digest %s is not the digest of the encoding", got.Digest())
			}
		}
	}
}

// TestMarshalLayout pins the encoding byte by byte, as documented.
func TestMarshalLayout(t *testing.T) {
	data := randomBytes(3, 2*testPiece+1)
	raw := build(data, testPiece, len(data)).Marshal()
	d := digest.FromBytes(data).String()
	var want []byte
	want = append(want, "OSIFSCT1"...)
	want = append(want, 0, 0, 0x10, 0)                // 4096
	want = append(want, 0, 0, 0, 0, 0, 0, 0x20, 0x01) // 8193
	want = append(want, byte(len(d)))
	want = append(want, d...)
	for _, p := range [][]byte{data[:testPiece], data[testPiece : 2*testPiece], data[2*testPiece:]} {
		s := sha256.Sum256(p)
		want = append(want, s[:]...)
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("encoding:\n got %x\nwant %x", raw, want)
	}
}

// TestTableBytesPerGiB pins what the README says a table costs.
func TestTableBytesPerGiB(t *testing.T) {
	for _, c := range []struct {
		size       int64
		piece      int64
		tableBytes int64
	}{
		{1 << 30, 64 << 10, 524_380},
		{10 << 30, 64 << 10, 5_242_972},
		{16 << 30, 64 << 10, 8_388_700},
		{64 << 30, 64 << 10, 33_554_524},
		{64<<30 + 1, 128 << 10, 16_777_340},
		{1 << 40, 1 << 20, 33_554_524},
	} {
		ps := PieceSizeFor(c.size)
		n := (c.size + ps - 1) / ps
		got := int64(headerLen+71) + 32*n // a sha256 digest string is 71 bytes
		if ps != c.piece || got != c.tableBytes {
			t.Errorf("blob of %d bytes: pieces of %d, table of %d bytes; want %d and %d", c.size, ps, got, c.piece, c.tableBytes)
		}
	}
}

func TestPieceSizeFor(t *testing.T) {
	for _, c := range []struct{ size, want int64 }{
		{0, DefaultPieceSize},
		{1, DefaultPieceSize},
		{DefaultPieceSize, DefaultPieceSize},
		{64 << 30, DefaultPieceSize},       // exactly 2^20 pieces
		{64<<30 + 1, 2 * DefaultPieceSize}, // one more piece would be too many
		{128 << 30, 2 * DefaultPieceSize},
		{128<<30 + 1, 4 * DefaultPieceSize},
		{1 << 46, MaxPieceSize},       // 64 TiB: 2^20 pieces of 64 MiB
		{1 << 48, MaxPieceSize},       // larger still: the largest pieces, more of them
		{math.MaxInt64, MaxPieceSize}, // no overflow, no endless loop
	} {
		got := PieceSizeFor(c.size)
		if got != c.want {
			t.Errorf("PieceSizeFor(%d) = %d, want %d", c.size, got, c.want)
		}
		if got < MinPieceSize || got > MaxPieceSize || got&(got-1) != 0 {
			t.Errorf("PieceSizeFor(%d) = %d: not a valid piece size", c.size, got)
		}
	}
}

// header builds the first bytes of a table by hand.
func header(ps uint32, size uint64, d string) []byte {
	b := []byte(magic)
	b = binary.BigEndian.AppendUint32(b, ps)
	b = binary.BigEndian.AppendUint64(b, size)
	b = append(b, byte(len(d)))
	return append(b, d...)
}

func TestParseRefuses(t *testing.T) {
	good := build(randomBytes(1, 3*testPiece), testPiece, 999).Marshal()
	d := digest.FromString("x").String()
	cases := map[string][]byte{
		"empty":              nil,
		"short":              good[:10],
		"bad magic":          append([]byte("OSIFSCT2"), good[8:]...),
		"piece size 0":       header(0, 0, d),
		"piece size 2 KiB":   header(2048, 0, d),
		"piece size 5 KiB":   header(5<<10, 0, d),
		"piece size 128 MiB": header(128<<20, 0, d),
		"huge blob size":     header(4096, 1<<63, d),
		"no digest":          header(4096, 0, ""),
		"digest cut short":   header(4096, 0, d)[:headerLen+10],
		"bad digest":         header(4096, 0, "sha256:XYZ"),
		"uppercase hex":      header(4096, 0, strings.ToUpper(d[:7])+strings.ToUpper(d[7:])),
		"one digest short":   good[:len(good)-32],
		"one byte short":     good[:len(good)-1],
		"a byte too many":    append(bytes.Clone(good), 0),
		"too many pieces":    append(header(4096, 4096*(MaxPieces+1), d), make([]byte, 32)...),
		"over the limit":     make([]byte, MaxTableSize+1),
	}
	for name, b := range cases {
		if _, err := Parse(b); !errors.Is(err, ErrTable) {
			t.Errorf("%s: Parse = %v, want ErrTable", name, err)
		}
	}
	if _, err := Parse(good); err != nil {
		t.Errorf("good table: %v", err)
	}
}

func TestCheck(t *testing.T) {
	data := randomBytes(9, 10*testPiece+100) // 11 pieces, the last of 100 bytes
	tb := build(data, testPiece, 5000)

	if err := tb.Check(0, data); err != nil {
		t.Errorf("whole blob: %v", err)
	}
	for i := range tb.Pieces() {
		off, n := tb.PieceRange(i)
		if err := tb.Check(off, data[off:off+n]); err != nil {
			t.Errorf("piece %d: %v", i, err)
		}
	}
	if err := tb.Check(3*testPiece, data[3*testPiece:6*testPiece]); err != nil {
		t.Errorf("pieces 3 to 5: %v", err)
	}
	if err := tb.Check(8*testPiece, data[8*testPiece:]); err != nil {
		t.Errorf("pieces 8 to the end: %v", err)
	}

	// One flipped byte in piece k names piece k, whatever range holds it.
	for _, k := range []int64{0, 4, 10} {
		for _, pos := range []int64{0, 1, 1234} {
			off, n := tb.PieceRange(k)
			pos = min(pos, n-1)
			bad := bytes.Clone(data)
			bad[off+pos] ^= 0x40
			for _, from := range []int64{0, k} { // the whole blob; the piece alone
				start := from * testPiece
				end := int64(len(bad))
				if from == k {
					end = off + n
				}
				err := tb.Check(start, bad[start:end])
				var pe *PieceError
				if !errors.As(err, &pe) {
					t.Errorf("byte %d of piece %d flipped, checked from piece %d: %v, want a *PieceError", pos, k, from, err)
					continue
				}
				sum := sha256.Sum256(bad[off : off+n])
				if pe.Piece != k || pe.Off != off || pe.Blob != tb.Blob || pe.Got != digest.NewDigestFromBytes(digest.SHA256, sum[:]).Encoded() {
					t.Errorf("byte %d of piece %d flipped: %+v", pos, k, pe)
				}
				if !strings.Contains(err.Error(), tb.Blob.String()) {
					t.Errorf("error does not name the blob: %v", err)
				}
			}
		}
	}

	// Ranges that are not whole pieces are refused, never half checked.
	misaligned := []struct{ off, n int64 }{
		{1, testPiece},                             // not on a boundary
		{testPiece / 2, testPiece},                 // ditto
		{0, testPiece - 1},                         // ends inside a piece
		{0, testPiece + 1},                         // ends inside the next piece
		{10 * testPiece, 99},                       // the last piece, cut short
		{-testPiece, testPiece},                    // before the blob
		{11 * testPiece, testPiece},                // past the blob
		{10 * testPiece, testPiece},                // the last piece, padded past the end
		{math.MaxInt64 - testPiece + 1, testPiece}, // an offset whose end overflows
		{1 << 62, testPiece},                       // far past the blob
	}
	for _, m := range misaligned {
		b := make([]byte, m.n)
		if m.off >= 0 && m.off+m.n <= int64(len(data)) && m.off+m.n > 0 {
			copy(b, data[m.off:])
		}
		if err := tb.Check(m.off, b); err == nil {
			t.Errorf("Check(%d, %d bytes) = nil, want a refusal", m.off, m.n)
		} else if errors.As(err, new(*PieceError)) {
			t.Errorf("Check(%d, %d bytes) = %v, want a refusal, not a piece error", m.off, m.n, err)
		}
	}
}

func TestCheckEmptyBlob(t *testing.T) {
	tb := build(nil, testPiece, 1)
	if tb.Pieces() != 0 {
		t.Fatalf("an empty blob has %d pieces", tb.Pieces())
	}
	if err := tb.Check(0, nil); err != nil {
		t.Errorf("Check(0, nothing) = %v", err)
	}
	if err := tb.Check(0, []byte{0}); err == nil {
		t.Errorf("Check(0, 1 byte) of an empty blob = nil")
	}
}

func TestCovers(t *testing.T) {
	data := randomBytes(5, 3*testPiece)
	tb := build(data, testPiece, len(data))
	d := digest.FromBytes(data)
	if err := tb.Covers(ocispec.Descriptor{Digest: d, Size: int64(len(data))}); err != nil {
		t.Errorf("its own layer: %v", err)
	}
	other := digest.FromString("other")
	for name, desc := range map[string]ocispec.Descriptor{
		"another digest":   {Digest: other, Size: int64(len(data))},
		"a size too big":   {Digest: d, Size: int64(len(data)) + 1},
		"a size too small": {Digest: d, Size: int64(len(data)) - 1},
		"no digest":        {Size: int64(len(data))},
	} {
		err := tb.Covers(desc)
		if err == nil {
			t.Errorf("%s: Covers = nil", name)
			continue
		}
		if !strings.Contains(err.Error(), desc.Digest.String()) {
			t.Errorf("%s: %v does not name the layer", name, err)
		}
	}
}
