package nervebus

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// TopicSchema is a typed topic's protobuf message type: the broker refuses a publish whose
// payload does not parse as it (codes.InvalidArgument naming the message's index).
type TopicSchema struct {
	// MessageType is the type's full name, e.g. "shop.v1.Order"; empty when the topic is untyped.
	MessageType string
	// DescriptorSet is the serialized google.protobuf.FileDescriptorSet that defines it.
	DescriptorSet []byte
}

// DescriptorSetOf returns the serialized FileDescriptorSet of msg's file and every file it
// imports, as [Admin.SetTopicSchema] takes it: a topic typed with your own generated type.
func DescriptorSetOf(msg proto.Message) ([]byte, error) {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(msg.ProtoReflect().Descriptor().ParentFile())
	return proto.Marshal(set)
}

// SetTopicSchema makes a topic typed: from now on its payloads must parse as msg's type (nil
// makes the topic untyped again). The descriptor set comes from msg's generated code.
func (a *Admin) SetTopicSchema(ctx context.Context, topic string, msg proto.Message) (*TopicSchema, error) {
	schema := &nervebusv1.PayloadSchema{}
	if msg != nil {
		set, err := DescriptorSetOf(msg)
		if err != nil {
			return nil, fmt.Errorf("nervebus: descriptor set of %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
		}
		schema.MessageType = string(msg.ProtoReflect().Descriptor().FullName())
		schema.DescriptorSet = set
	}
	res, err := a.svc.SetTopicSchema(ctx, &nervebusv1.SetTopicSchemaRequest{Topic: topic, Schema: schema})
	if err != nil {
		return nil, adminError("set the schema of topic %q", topic)(err)
	}
	return &TopicSchema{MessageType: res.GetSchema().GetMessageType(), DescriptorSet: res.GetSchema().GetDescriptorSet()}, nil
}

// GetTopicSchema returns a topic's message type (MessageType empty when it is untyped).
func (a *Admin) GetTopicSchema(ctx context.Context, topic string) (*TopicSchema, error) {
	res, err := a.svc.GetTopicSchema(ctx, &nervebusv1.GetTopicSchemaRequest{Topic: topic})
	if err != nil {
		return nil, adminError("get the schema of topic %q", topic)(err)
	}
	return &TopicSchema{MessageType: res.GetSchema().GetMessageType(), DescriptorSet: res.GetSchema().GetDescriptorSet()}, nil
}

// TypedPublisher publishes values of one generated protobuf type: a thin wrapper that
// serializes them into the payload of its [Publisher].
type TypedPublisher[T proto.Message] struct {
	p *Publisher
}

// NewTypedPublisher wraps p for values of type T.
func NewTypedPublisher[T proto.Message](p *Publisher) *TypedPublisher[T] {
	return &TypedPublisher[T]{p: p}
}

// Publish serializes value into the payload and publishes it with meta's attributes, ordering
// key, id and delay (meta may be nil; its Data is ignored). A value that cannot be serialized
// gives a result that fails with codes.InvalidArgument.
func (t *TypedPublisher[T]) Publish(ctx context.Context, value T, meta *Message) *PublishResult {
	data, err := proto.Marshal(value)
	if err != nil {
		r := newPublishResult()
		r.set(Receipt{}, invalidArg("data", "cannot serialize %T: %v", value, err))
		return r
	}
	m := Message{}
	if meta != nil {
		m = Message{Attributes: meta.Attributes, OrderingKey: meta.OrderingKey, ID: meta.ID, DeliverAt: meta.DeliverAt, Delay: meta.Delay}
	}
	m.Data = data
	return t.p.Publish(ctx, &m)
}

// Publisher is the wrapped publisher (Flush, Close, ResumePublish).
func (t *TypedPublisher[T]) Publisher() *Publisher { return t.p }

// TypedHandler adapts a handler of values of type T (a generated message, given as *T) to
// [Subscriber.Receive]: each payload is deserialized into a new T first. A payload that does
// not parse is terminated (dead-lettered, or dropped without a dead-letter topic) and never
// reaches h, since redelivering it cannot help.
func TypedHandler[T any, PT interface {
	*T
	proto.Message
}](h func(ctx context.Context, value PT, m *Message)) func(context.Context, *Message) {
	return func(ctx context.Context, m *Message) {
		value := PT(new(T))
		if err := proto.Unmarshal(m.Data, value); err != nil {
			m.Terminate()
			return
		}
		h(ctx, value, m)
	}
}
