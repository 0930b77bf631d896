package nervebus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// Client is a connection to one NerveBus broker, shared by the publishers and subscribers made
// from it. It is safe for concurrent use. Close it when done.
type Client struct {
	conn      grpc.ClientConnInterface
	closeConn func() error
	publisher nervebusv1.PublisherServiceClient
	receiver  nervebusv1.SubscriberServiceClient
	tracing   tracing
	router    *ownerRouter // nil unless WithDirectToOwner
}

// Option configures a [Client].
type Option func(*clientOptions)

type clientOptions struct {
	conn           grpc.ClientConnInterface
	creds          credentials.TransportCredentials
	tlsConfig      *tls.Config
	tokens         TokenSource
	dialOptions    []grpc.DialOption
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
	directToOwner  bool
}

// WithConn makes the client use an existing gRPC connection instead of dialing one; the
// caller keeps ownership of it ([Client.Close] does not close it). The address given to
// [NewClient] is then ignored.
func WithConn(conn grpc.ClientConnInterface) Option {
	return func(o *clientOptions) { o.conn = conn }
}

// WithTransportCredentials sets the connection's credentials, for example TLS. The default is
// a plaintext connection.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(o *clientOptions) { o.creds = creds }
}

// WithDialOptions adds gRPC dial options, applied after the client's own (so they win).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *clientOptions) { o.dialOptions = append(o.dialOptions, opts...) }
}

// WithTracerProvider sets the OpenTelemetry tracer provider of the publish and process spans.
// The default is the global one (otel.GetTracerProvider()), which does nothing until the
// application installs an SDK.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *clientOptions) { o.tracerProvider = tp }
}

// WithPropagator sets how trace context is written to and read from message attributes. The
// default is the W3C Trace Context propagator (attributes `traceparent` and `tracestate`),
// whatever the global propagator is, since that is what the broker understands.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *clientOptions) { o.propagator = p }
}

// WithDirectToOwner, for several brokers sharing one database (--cluster), sends each topic's
// publishes and Receive streams straight to the broker that owns the topic (asked with
// LocateTopic through addr, over a connection dialed with the same credentials, token and
// dial options) and follows the topic when it moves: an UNAVAILABLE naming the owner in its
// nervebus-owner trailer moves the topic's calls there, any other UNAVAILABLE sends them back
// to addr and asks again, and owners are asked again every 10 s. Until an owner is known the
// broker at addr forwards the calls. Publishes retry with the same message ids and streams
// reconnect as usual, so a move loses no confirmed publish or confirmed ack. Stream publishers
// go to the owner known when they open; admin calls always go to addr. Not with [WithConn].
func WithDirectToOwner() Option {
	return func(o *clientOptions) { o.directToOwner = true }
}

// NewClient makes a client of the broker at addr ("host:port"). The connection is made lazily
// and remade after failures, so NewClient does not fail when the broker is down; calls fail
// with UNAVAILABLE until it is up (publishes and Receive retry).
func NewClient(addr string, opts ...Option) (*Client, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{closeConn: func() error { return nil }}
	if o.conn != nil && (o.tlsConfig != nil || o.tokens != nil) {
		return nil, errors.New("nervebus: NewClient: WithConn takes the connection as it is; give it TLS and tokens yourself")
	}
	if o.creds != nil && o.tlsConfig != nil {
		return nil, errors.New("nervebus: NewClient: WithTLS and WithTransportCredentials both set the transport; use one")
	}
	dialed := ""
	if o.conn != nil && o.directToOwner {
		return nil, errors.New("nervebus: NewClient: WithDirectToOwner dials the owners itself; it cannot use WithConn")
	}
	if o.conn != nil {
		c.conn = o.conn
	} else {
		if addr == "" {
			return nil, errors.New("nervebus: NewClient: empty broker address")
		}
		creds := o.creds
		if o.tlsConfig != nil {
			creds = credentials.NewTLS(o.tlsConfig)
		}
		if creds == nil {
			if o.tokens != nil {
				return nil, errors.New("nervebus: NewClient: a token is sent over TLS only; add WithTLS")
			}
			creds = insecure.NewCredentials()
		}
		dial := []grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			// Reconnect quickly after a broker restart; grpc's default backoff grows to 2 min.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   5 * time.Second,
				},
				MinConnectTimeout: 5 * time.Second,
			}),
			// Notice a dead broker on an idle Receive stream. The broker allows pings every 10 s.
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
			// A delivery batch holds up to ~1 MiB plus one message of up to the broker's max
			// message size, which may be configured above grpc's default 4 MiB limit.
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20)),
		}
		if o.tokens != nil {
			dial = append(dial, grpc.WithPerRPCCredentials(bearerCredentials{o.tokens}))
		}
		dial = append(dial, o.dialOptions...)
		conn, err := grpc.NewClient(addr, dial...)
		if err != nil {
			return nil, fmt.Errorf("nervebus: connect to %s: %w", addr, err)
		}
		c.conn = conn
		c.closeConn = conn.Close
		dialed = addr
		if o.directToOwner {
			home := brokerConn{
				publisher: nervebusv1.NewPublisherServiceClient(conn),
				receiver:  nervebusv1.NewSubscriberServiceClient(conn),
			}
			c.router = newOwnerRouter(home, addr, nervebusv1.NewAdminServiceClient(conn),
				func(to string) (*grpc.ClientConn, error) { return grpc.NewClient(to, dial...) })
		}
	}
	c.publisher = nervebusv1.NewPublisherServiceClient(c.conn)
	c.receiver = nervebusv1.NewSubscriberServiceClient(c.conn)
	tp := o.tracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := o.propagator
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	c.tracing = newTracing(tp, prop, dialed)
	return c, nil
}

// Conn returns the client's gRPC connection, for calling services this package does not wrap.
func (c *Client) Conn() grpc.ClientConnInterface { return c.conn }

// OwnerOf tells, with [WithDirectToOwner], the broker ("host:port") topic's calls go to as
// last learnt; "" means the broker the client was made for (it owns the topic, or the owner is
// not known yet).
func (c *Client) OwnerOf(topic string) string {
	if c.router == nil {
		return ""
	}
	return c.router.ownerOf(topic)
}

// publisherFor is the Publisher service to call for topic now.
func (c *Client) publisherFor(topic string) nervebusv1.PublisherServiceClient {
	if c.router == nil {
		return c.publisher
	}
	return c.router.pick(topic).publisher
}

// receiverFor is the Subscriber service to call for topic now.
func (c *Client) receiverFor(topic string) nervebusv1.SubscriberServiceClient {
	if c.router == nil {
		return c.receiver
	}
	return c.router.pick(topic).receiver
}

// callFailed tells the router (if any) that a call for topic failed, with the call's trailer.
func (c *Client) callFailed(topic string, err error, trailer metadata.MD) {
	if c.router != nil {
		c.router.failed(topic, err, trailer)
	}
}

// Close closes the connection (unless it came from [WithConn]). Close publishers first so
// that their buffered messages are sent, and stop every Receive.
func (c *Client) Close() error {
	if c.router != nil {
		c.router.close()
	}
	if err := c.closeConn(); err != nil {
		return fmt.Errorf("nervebus: close connection: %w", err)
	}
	return nil
}
