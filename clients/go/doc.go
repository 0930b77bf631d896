// Package nervebus is the Go client of NerveBus, a persistent message broker with a gRPC API.
//
// A [Client] holds one gRPC connection to a broker. From it come a [Publisher] per topic, which
// batches messages into SendPack calls and reports each message's seq through a
// [PublishResult], and a [Subscriber] per subscription, whose [Subscriber.Receive] runs a
// handler for every delivered message under flow control and keeps the message leased while
// the handler works:
//
//	client, err := nervebus.NewClient("127.0.0.1:7070")
//	if err != nil { ... }
//	defer client.Close()
//
//	pub := client.Publisher("orders", nil)
//	res := pub.Publish(ctx, &nervebus.Message{Data: []byte("hello")})
//	receipt, err := res.Get(ctx) // receipt.Seq, receipt.TraceID
//	pub.Close(ctx)
//
//	sub := client.Subscriber("orders", "billing", nil)
//	err = sub.Receive(ctx, func(ctx context.Context, m *nervebus.Message) {
//		// ... process m.Data ...
//		m.Ack()
//	})
//
// [Client.Admin] manages topics and subscriptions (create, update, delete, pause, resume,
// purge, seek) and reads their figures ([Admin.GetStats]).
//
// Errors returned by the broker keep their gRPC status: status.Code(err) (from
// google.golang.org/grpc/status) tells INVALID_ARGUMENT, NOT_FOUND and so on through the
// wrapping that this package adds.
//
// Every published message carries the W3C trace context of the publishing span in its
// `traceparent` / `tracestate` attributes, and every handler runs in a consumer span that is a
// child of it; see [WithTracerProvider].
//
// The generated gRPC stubs are in the gen/nervebus/v1 package, for anything this layer does not
// cover.
package nervebus
