package nervebus

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrPublisherClosed is returned by publishes on a [Publisher] after Close.
	ErrPublisherClosed = errors.New("nervebus: publisher is closed")

	// ErrOrderingKeyPaused is returned for messages of an ordering key whose earlier message
	// could not be published: later messages of the key are refused, so that they cannot
	// overtake it, until [Publisher.ResumePublish] is called for the key. The error also wraps
	// the failure that paused the key.
	ErrOrderingKeyPaused = errors.New("nervebus: ordering key is paused after a failed publish")

	// ErrReceiveInProgress is returned by [Subscriber.Receive] while another Receive on the
	// same Subscriber is running.
	ErrReceiveInProgress = errors.New("nervebus: Receive is already running on this subscriber")

	// ErrAckNotConfirmed is returned by [AckResult.Get] when the receive session ended before
	// the broker confirmed the ack. The ack may still have been applied.
	ErrAckNotConfirmed = errors.New("nervebus: ack was not confirmed before the receive session ended")

	// ErrMessageSettled is returned by [AckResult.Get] when the message had already been
	// acked, nacked or terminated through this client before.
	ErrMessageSettled = errors.New("nervebus: message was already settled")
)

// Code returns the gRPC status code carried by err or by any error it wraps: codes.OK for
// nil, codes.Canceled / codes.DeadlineExceeded for context errors, codes.Unknown when err
// carries no status.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Unknown
}

// IsRetryable reports whether err is a broker error worth retrying with backoff: UNAVAILABLE
// (the broker is restarting, unreachable, or the outcome is unknown) and RESOURCE_EXHAUSTED
// (its write buffers are full).
func IsRetryable(err error) bool {
	switch Code(err) {
	case codes.Unavailable, codes.ResourceExhausted:
		return true
	}
	return false
}

// streamRetryable reports whether a Receive stream that ended with err should be reopened.
// Besides the publish codes, ABORTED and INTERNAL cover transport resets (RST_STREAM), and a
// stream that the server ended without a status while the client still wanted it is retried
// too (errUnexpectedEnd).
func streamRetryable(err error) bool {
	if errors.Is(err, errUnexpectedEnd) {
		return true
	}
	switch Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal:
		return true
	}
	return false
}

var errUnexpectedEnd = errors.New("nervebus: the broker ended the Receive stream")
