package nervebus

// unconfirmedSettles keeps the acks and terminations of messages the application is done with
// until the broker is known to have them, so that a redelivery of such a message (its stream
// ended before the broker read the settlement) gets the settlement again instead of going to
// a second handler. Only a later attempt is such a redelivery: the broker counts on from the
// settled one while the message is unacked, and starts again at 1 when a seek back replays an
// acked message. One is known to be applied once the broker confirms the ack (ConfirmAcks)
// or reports a floor at or above its seq (on subscribe and in heartbeats); without either, it
// is forgotten only when limit newer settlements push it out. Not safe for concurrent use.
type unconfirmedSettles struct {
	limit int
	bySeq map[uint64]keptSettle
	// order holds the seqs oldest first; an entry whose n no longer matches bySeq is stale
	// (the seq was forgotten, or settled again later).
	order []orderedSeq
	next  uint64
	floor uint64
}

type keptSettle struct {
	kind    settleKind
	attempt int // the delivery attempt that was settled
	n       uint64
}

type orderedSeq struct {
	seq uint64
	n   uint64
}

func newUnconfirmedSettles(limit int) *unconfirmedSettles {
	return &unconfirmedSettles{limit: max(limit, 1), bySeq: map[uint64]keptSettle{}}
}

// add records the settlement of delivery attempt of seq, replacing an earlier one of the seq.
func (u *unconfirmedSettles) add(seq uint64, attempt int, kind settleKind) {
	if seq <= u.floor {
		return
	}
	u.next++
	u.bySeq[seq] = keptSettle{kind: kind, attempt: attempt, n: u.next}
	u.order = append(u.order, orderedSeq{seq: seq, n: u.next})
	for len(u.bySeq) > u.limit {
		o := u.order[0]
		u.order = u.order[1:]
		if k, ok := u.bySeq[o.seq]; ok && k.n == o.n {
			delete(u.bySeq, o.seq)
		}
	}
	// Stale entries are dropped once they are most of order, so it stays within 2 × bySeq.
	if len(u.order) > 64 && len(u.order) > 2*len(u.bySeq) {
		live := make([]orderedSeq, 0, len(u.bySeq))
		for _, o := range u.order {
			if k, ok := u.bySeq[o.seq]; ok && k.n == o.n {
				live = append(live, o)
			}
		}
		u.order = live
	}
}

// redelivered returns the kept settlement of seq if delivery attempt of seq is a redelivery of
// the settled message (a later attempt). A delivery that is not is new to the application: the
// kept settlement is forgotten.
func (u *unconfirmedSettles) redelivered(seq uint64, attempt int) (settleKind, bool) {
	k, ok := u.bySeq[seq]
	if !ok || attempt > k.attempt {
		return k.kind, ok
	}
	delete(u.bySeq, seq)
	return settleNone, false
}

// forget drops the settlement of seq (the broker confirmed or ignored the ack).
func (u *unconfirmedSettles) forget(seq uint64) {
	delete(u.bySeq, seq)
}

// setFloor takes a floor the broker reported: every seq up to it is acked, so no message up to
// it comes again (a seek back may replay them, as first attempts).
func (u *unconfirmedSettles) setFloor(floor uint64) {
	if floor > u.floor {
		for seq := range u.bySeq {
			if seq <= floor {
				delete(u.bySeq, seq)
			}
		}
	}
	u.floor = floor
}

// acks returns the seqs of the kept acks (to send again on a new stream).
func (u *unconfirmedSettles) acks() []uint64 {
	var seqs []uint64
	for seq, k := range u.bySeq {
		if k.kind == settleAck {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}
