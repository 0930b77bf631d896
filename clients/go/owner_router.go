package nervebus

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// ownerTrailer names, on an UNAVAILABLE, the broker that owns the call's topic (--cluster).
const ownerTrailer = "nervebus-owner"

// relocateAfter is how long a located owner is trusted before it is asked again: an owner that
// handed a topic over forwards the calls it still gets, so nothing fails meanwhile, but they
// take a detour.
const relocateAfter = 10 * time.Second

// brokerConn is the clients of one broker connection.
type brokerConn struct {
	publisher nervebusv1.PublisherServiceClient
	receiver  nervebusv1.SubscriberServiceClient
	conn      *grpc.ClientConn // nil for the client's own connection, which the Client closes
}

type knownOwner struct {
	addr string // "" for the client's own broker
	at   time.Time
}

// ownerRouter sends each topic's publishes and Receive streams to the broker that owns it
// (several brokers on one database, --cluster), found with LocateTopic through the client's
// own broker. Until the owner is known, and whenever it is in doubt, calls go to the own
// broker, which forwards them: no call waits for a lookup. An UNAVAILABLE whose trailer names
// the owner moves the topic there; any other UNAVAILABLE (the owner died, a stream ended
// because the topic moved) sends it back to the own broker and asks again. The publisher's
// retries (same message ids) and the subscriber's reconnects do the rest.
type ownerRouter struct {
	home     brokerConn
	homeAddr string
	dial     func(addr string) (*grpc.ClientConn, error)
	admin    nervebusv1.AdminServiceClient

	mu       sync.Mutex
	conns    map[string]brokerConn
	owners   map[string]knownOwner
	locating map[string]bool
	closed   bool
}

func newOwnerRouter(home brokerConn, homeAddr string, admin nervebusv1.AdminServiceClient,
	dial func(addr string) (*grpc.ClientConn, error)) *ownerRouter {
	return &ownerRouter{
		home: home, homeAddr: homeAddr, dial: dial, admin: admin,
		conns: map[string]brokerConn{}, owners: map[string]knownOwner{}, locating: map[string]bool{},
	}
}

// pick returns the connection to call for topic now.
func (r *ownerRouter) pick(topic string) brokerConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	known, ok := r.owners[topic]
	if !ok || time.Since(known.at) > relocateAfter {
		r.relocateLocked(topic)
	}
	if !ok || known.addr == "" || r.closed {
		return r.home
	}
	if c, ok := r.conns[known.addr]; ok {
		return c
	}
	conn, err := r.dial(known.addr)
	if err != nil {
		return r.home // an address grpc cannot parse: the own broker forwards
	}
	c := brokerConn{
		publisher: nervebusv1.NewPublisherServiceClient(conn),
		receiver:  nervebusv1.NewSubscriberServiceClient(conn),
		conn:      conn,
	}
	r.conns[known.addr] = c
	return c
}

// failed learns from a failed call for topic, with the call's trailer.
func (r *ownerRouter) failed(topic string, err error, trailer metadata.MD) {
	if Code(err) != codes.Unavailable {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if owner := trailer.Get(ownerTrailer); len(owner) > 0 && owner[0] != "" {
		r.learnLocked(topic, owner[0])
		return
	}
	delete(r.owners, topic)
	r.relocateLocked(topic)
}

// ownerOf is the broker topic's calls go to as last learnt ("" for the own broker).
func (r *ownerRouter) ownerOf(topic string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owners[topic].addr
}

func (r *ownerRouter) learnLocked(topic, addr string) {
	if addr == r.homeAddr {
		addr = ""
	}
	r.owners[topic] = knownOwner{addr: addr, at: time.Now()}
}

func (r *ownerRouter) relocateLocked(topic string) {
	if r.closed || r.locating[topic] {
		return
	}
	r.locating[topic] = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := r.admin.LocateTopic(ctx, &nervebusv1.LocateTopicRequest{Topic: topic})
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.locating, topic)
		// On failure the owner known so far (or the own broker) keeps the topic; the next failed
		// call, or the next after relocateAfter, asks again.
		if err == nil {
			r.learnLocked(topic, resp.GetAddress())
		}
	}()
}

// close closes the connections to other brokers.
func (r *ownerRouter) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, c := range r.conns {
		_ = c.conn.Close()
	}
	clear(r.conns)
}
