package integrity

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layer is a blob of a test image: its bytes, descriptor and table.
type layer struct {
	data  []byte
	desc  ocispec.Descriptor
	table *Table
}

func newLayer(seed uint64, size int, pieceSize int64) layer {
	data := randomBytes(seed, size)
	return layer{
		data:  data,
		desc:  ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(size)},
		table: build(data, pieceSize, 8192),
	}
}

const testChunk = 4 * testPiece

func TestNewVerifierDecisions(t *testing.T) {
	withTable := newLayer(1, 10*testChunk+7, testPiece) // a table of 4 KiB pieces
	coarse := newLayer(2, 3*testChunk, 2*testChunk)     // pieces larger than a chunk
	bare := newLayer(3, 2*testChunk, testPiece)         // no table found for it
	small := newLayer(4, testChunk, testPiece)          // one chunk: its digest is its check
	found := []Found{
		{Table: withTable.table, From: "manifest sha256:aaa"},
		{Table: coarse.table, From: "referrer sha256:bbb"},
	}
	layers := []ocispec.Descriptor{withTable.desc, coarse.desc, bare.desc, small.desc, withTable.desc} // a layer twice: one decision

	type want struct {
		mode      Mode
		pieceSize int64
		from, why string
	}
	cases := map[Mode][]want{
		Auto: {
			{Pieces, testPiece, "manifest sha256:aaa", ""},
			{Whole, 0, "", "do not divide"},
			{Whole, 0, "", "no chunk table"},
			{Pieces, testChunk, "its digest (one chunk)", ""},
		},
		Whole: {{Whole, 0, "", ""}, {Whole, 0, "", ""}, {Whole, 0, "", ""}, {Whole, 0, "", ""}},
		Off:   {{Off, 0, "", ""}, {Off, 0, "", ""}, {Off, 0, "", ""}, {Off, 0, "", ""}},
	}
	for mode, wants := range cases {
		v, ds, err := NewVerifier(mode, testChunk, layers, found)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if len(ds) != len(wants) {
			t.Fatalf("%s: %d decisions, want %d: %+v", mode, len(ds), len(wants), ds)
		}
		for i, w := range wants {
			d := ds[i]
			if d.Blob != layers[i].Digest || d.Size != layers[i].Size || d.Mode != w.mode || d.PieceSize != w.pieceSize || d.From != w.from || !strings.Contains(d.Why, w.why) || (w.why == "" && d.Why != "") {
				t.Errorf("%s, layer %d: %+v, want %+v", mode, i, d, w)
			}
			if got := v.PieceSize(d.Blob); got != w.pieceSize {
				t.Errorf("%s, layer %d: PieceSize = %d, want %d", mode, i, got, w.pieceSize)
			}
		}
		if v.Whole(bare.desc.Digest) != (mode != Off) {
			t.Errorf("%s: Whole = %v", mode, v.Whole(bare.desc.Digest))
		}
	}

	// In auto mode the pieces decided on are checked, and bad ones caught.
	v, _, _ := NewVerifier(Auto, testChunk, layers, found)
	if err := v.CheckPieces(withTable.desc.Digest, testChunk, withTable.data[testChunk:2*testChunk]); err != nil {
		t.Errorf("a good chunk: %v", err)
	}
	bad := append([]byte(nil), withTable.data[testChunk:2*testChunk]...)
	bad[testPiece+1] ^= 1
	var pe *PieceError
	if err := v.CheckPieces(withTable.desc.Digest, testChunk, bad); !errors.As(err, &pe) || pe.Piece != testChunk/testPiece+1 {
		t.Errorf("a chunk with a bad second piece: %v, want a *PieceError for piece %d", err, testChunk/testPiece+1)
	}
	if err := v.CheckPieces(small.desc.Digest, 0, small.data); err != nil {
		t.Errorf("a one-chunk blob by its digest: %v", err)
	}
	badSmall := append([]byte(nil), small.data...)
	badSmall[len(badSmall)-1] ^= 1
	var dm *DigestMismatchError
	if err := v.CheckPieces(small.desc.Digest, 0, badSmall); !errors.As(err, &dm) || dm.Digest != small.desc.Digest {
		t.Errorf("a bad one-chunk blob: %v, want a *DigestMismatchError", err)
	}
	if err := v.CheckPieces(small.desc.Digest, 0, small.data[:10]); err == nil || errors.As(err, &dm) {
		t.Errorf("part of a one-chunk blob: %v, want a refusal", err)
	}
	if err := v.CheckPieces(bare.desc.Digest, 0, bare.data[:testChunk]); err == nil {
		t.Errorf("a blob without pieces to check: CheckPieces = nil")
	}
}

func TestNewVerifierPiecesMode(t *testing.T) {
	withTable := newLayer(1, 3*testChunk, testPiece)
	small := newLayer(2, testChunk-1, testPiece)
	bare := newLayer(3, testChunk+1, testPiece) // one byte more than a chunk, no table
	found := []Found{{Table: withTable.table, From: "manifest sha256:aaa"}}

	_, ds, err := NewVerifier(Pieces, testChunk, []ocispec.Descriptor{withTable.desc, small.desc}, found)
	if err != nil {
		t.Fatalf("every layer checkable: %v", err)
	}
	for _, d := range ds {
		if d.Mode != Pieces {
			t.Errorf("--verify pieces: %s got %s", d.Blob, d.Mode)
		}
	}

	_, _, err = NewVerifier(Pieces, testChunk, []ocispec.Descriptor{withTable.desc, bare.desc}, found)
	if err == nil || !strings.Contains(err.Error(), bare.desc.Digest.String()) || !strings.Contains(err.Error(), "osimagefs index") {
		t.Errorf("a layer without a table: %v, want an error naming it and the fix", err)
	}
	// A table whose pieces do not divide the chunks is no help either.
	_, _, err = NewVerifier(Pieces, testPiece/2*3, []ocispec.Descriptor{withTable.desc}, found)
	if err == nil || !strings.Contains(err.Error(), "do not divide") {
		t.Errorf("pieces not dividing the chunks: %v", err)
	}
	// A table for another size of the same digest is not used.
	wrong := *withTable.table
	wrong.Size--
	_, _, err = NewVerifier(Pieces, testChunk, []ocispec.Descriptor{withTable.desc}, []Found{{Table: &wrong}})
	if err == nil {
		t.Errorf("a table of another size was used")
	}
	// A blob of one chunk whose digest cannot be checked.
	odd := small.desc
	odd.Digest = "md5:0123"
	if _, _, err := NewVerifier(Pieces, testChunk, []ocispec.Descriptor{odd}, nil); err == nil {
		t.Errorf("a one-chunk blob with an unusable digest: no error")
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "pieces", "blob", "off"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Auto", "whole", "piece"} {
		if _, err := ParseMode(s); err == nil || !strings.Contains(err.Error(), "auto, pieces, blob or off") {
			t.Errorf("ParseMode(%q) = %v", s, err)
		}
	}
}

func TestCheckBlob(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(8, 100000)
	d := digest.FromBytes(data)
	if err := CheckBlob(ctx, d, strings.NewReader(string(data))); err != nil {
		t.Errorf("good blob: %v", err)
	}
	bad := append([]byte(nil), data...)
	bad[500] ^= 1
	var dm *DigestMismatchError
	if err := CheckBlob(ctx, d, strings.NewReader(string(bad))); !errors.As(err, &dm) || dm.Got != digest.FromBytes(bad) {
		t.Errorf("bad blob: %v", err)
	}
	if err := CheckBlob(ctx, "sha256:nothex", strings.NewReader("")); err == nil || errors.As(err, &dm) {
		t.Errorf("malformed digest: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := CheckBlob(cctx, d, strings.NewReader(string(data))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
