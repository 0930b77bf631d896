package nervebus

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"

	"go.opentelemetry.io/otel/propagation"
)

// The statements of [WriteOutbox], the same in the TypeScript and Python clients: lock the
// ordering key (so transactions with one key commit in id order), then insert the row.
const (
	OutboxLockKeySQL = "INSERT INTO nb_outbox_key (key_hash) VALUES (UNHEX(SHA2(?, 256))) ON DUPLICATE KEY UPDATE key_hash = key_hash"
	OutboxInsertSQL  = "INSERT INTO nb_outbox (topic, ordering_key, attributes, data) VALUES (?, ?, ?, ?)"
)

// WriteOutbox writes m for topic into the outbox table nb_outbox inside tx, the caller's MySQL
// transaction: the broker (started with --outbox naming this database) publishes it once, if
// and only if tx commits. m's Data, Attributes and OrderingKey are used (ID, DeliverAt and Delay
// are not: the relay gives the message the id "outbox/<source id>/<row id>"). The span context
// in ctx is written as the message's traceparent (W3C) unless the attributes carry one. With an
// ordering key, the key's row in nb_outbox_key stays locked until tx ends, so messages of one
// key are delivered in commit order: write outbox rows after the statements that lock your own
// rows, so every transaction takes locks in the same order. Returns the row id, or the driver's
// error.
func WriteOutbox(ctx context.Context, tx *sql.Tx, topic string, m *Message) (int64, error) {
	attrs := make(map[string]string, len(m.Attributes)+2)
	maps.Copy(attrs, m.Attributes)
	if _, ok := attrs["traceparent"]; !ok {
		propagation.TraceContext{}.Inject(ctx, attributesCarrier(attrs))
	}
	var attributes any // NULL when there are none
	if len(attrs) > 0 {
		b, err := json.Marshal(attrs)
		if err != nil {
			return 0, fmt.Errorf("nervebus: outbox attributes: %w", err)
		}
		attributes = string(b)
	}
	if m.OrderingKey != "" {
		if _, err := tx.ExecContext(ctx, OutboxLockKeySQL, m.OrderingKey); err != nil {
			return 0, fmt.Errorf("nervebus: locking outbox key: %w", err)
		}
	}
	data := m.Data
	if data == nil {
		data = []byte{} // the column is NOT NULL
	}
	res, err := tx.ExecContext(ctx, OutboxInsertSQL, topic, m.OrderingKey, attributes, data)
	if err != nil {
		return 0, fmt.Errorf("nervebus: writing outbox row: %w", err)
	}
	return res.LastInsertId()
}
