package nervebus

// What the tests of package nervebus_test need to see of the package's internals.

// DefaultPublisherConfig is the configuration a publisher made without one uses.
func DefaultPublisherConfig() PublisherConfig { return PublisherConfig{}.withDefaults() }

// DefaultSubscriberConfig is the configuration a subscriber made without one uses.
func DefaultSubscriberConfig() SubscriberConfig { return SubscriberConfig{}.withDefaults() }

// StreamRetryable tells whether a Receive stream that ended with err is reopened.
var StreamRetryable = streamRetryable
