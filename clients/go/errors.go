package nervebus

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrPublisherClosed is returned by publishes on a [Publisher] after Close.
	ErrPublisherClosed = errors.New("nervebus: publisher is closed")

	// ErrOrderingKeyPaused is returned for messages of an ordering key whose earlier message
	// could not be published: later messages of the key are refused, so that they cannot
	// overtake it, until [Publisher.ResumePublish] is called for the key. Such an error has
	// the code FAILED_PRECONDITION ([Code]) and wraps the failure that paused the key.
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
// (its write buffers are full). The publishers turn a CANCELLED they did not cause and an
// INTERNAL into UNAVAILABLE first: their outcome is unknown.
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

// errAckIgnored is an [AckResult] error: the broker did not apply the ack, because it had not
// delivered the message on the subscription (AckResults.ignored_seqs).
var errAckIgnored = fmt.Errorf("%w: the broker ignored it, the message was not delivered on the subscription", ErrAckNotConfirmed)

// keyPausedError refuses a message of a paused ordering key: errors.Is(err,
// ErrOrderingKeyPaused) holds, errors.Unwrap gives the failure that paused the key, and its
// gRPC code is FAILED_PRECONDITION, as in the other clients.
type keyPausedError struct {
	key   string
	cause error
}

func (e *keyPausedError) Error() string {
	return fmt.Sprintf("ordering key %q is paused after a failed publish, until ResumePublish: %v", e.key, e.cause)
}

func (e *keyPausedError) Is(target error) bool { return target == ErrOrderingKeyPaused }

func (e *keyPausedError) Unwrap() error { return e.cause }

// GRPCStatus makes [Code] and status.Code report FAILED_PRECONDITION rather than the cause's code.
func (e *keyPausedError) GRPCStatus() *status.Status {
	return status.New(codes.FailedPrecondition, e.Error())
}

// badMessageIndex matches the broker's error about one message of a pack ("messages[3]: …",
// "messages[3].attributes: …").
var badMessageIndex = regexp.MustCompile(`^messages\[(\d+)\]`)

// badMessage tells whether err is the broker's INVALID_ARGUMENT about one message of a pack of
// n, and returns its index and an error of its own, naming it "message" instead of
// "messages[i]". own is nil otherwise.
func badMessage(err error, n int) (index int, own error) {
	st := statusIn(err)
	if st == nil || st.Code() != codes.InvalidArgument {
		return 0, nil
	}
	detail := st.Message()
	m := badMessageIndex.FindStringSubmatch(detail)
	if m == nil {
		return 0, nil
	}
	i, convErr := strconv.Atoi(m[1])
	if convErr != nil || i >= n {
		return 0, nil
	}
	return i, status.Error(codes.InvalidArgument, "message"+strings.TrimPrefix(detail, m[0]))
}

// statusIn returns the innermost gRPC status in err's chain, as the broker sent it
// (status.FromError of a wrapped status puts the whole wrapped message in it).
func statusIn(err error) *status.Status {
	var found *status.Status
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := e.(interface{ GRPCStatus() *status.Status }); ok {
			found = s.GRPCStatus()
		}
	}
	return found
}
