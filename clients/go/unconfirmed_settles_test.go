package nervebus

import (
	"slices"
	"testing"
)

func TestUnconfirmedSettles(t *testing.T) {
	u := newUnconfirmedSettles(3)
	for seq := uint64(1); seq <= 5; seq++ {
		u.add(seq, 1, settleAck)
	}
	u.add(3, 1, settleTerminate) // settled again: now the newest
	acks := u.acks()
	slices.Sort(acks)
	if !slices.Equal(acks, []uint64{4, 5}) {
		t.Fatalf("acks %v, want [4 5] (the limit keeps the 3 newest; 3 is a termination)", acks)
	}
	if kind, ok := u.redelivered(3, 2); !ok || kind != settleTerminate {
		t.Fatalf("attempt 2 of seq 3: %v %v, want the termination", kind, ok)
	}
	// A seek back replays an acked message as attempt 1: it is new, and forgotten here.
	if _, ok := u.redelivered(4, 1); ok {
		t.Fatal("attempt 1 of seq 4 (a replay) taken for a redelivery")
	}
	if _, ok := u.redelivered(4, 2); ok {
		t.Fatal("seq 4 still kept after its replay")
	}
	u.setFloor(5)
	if len(u.bySeq) != 0 {
		t.Fatalf("kept %v after floor 5", u.bySeq)
	}
	u.add(5, 1, settleAck) // at or below the floor: already applied
	if len(u.bySeq) != 0 {
		t.Fatal("a seq at the floor was kept")
	}
	// Many settlements through a small limit: order stays bounded.
	for seq := uint64(10); seq < 10_000; seq++ {
		u.add(seq, 1, settleAck)
		u.add(seq, 1, settleAck) // a stale entry in order each time
	}
	if len(u.bySeq) != 3 || len(u.order) > 2*3+64 {
		t.Fatalf("%d kept, order %d long", len(u.bySeq), len(u.order))
	}
}
