// The value of every record minimess writes to its Kafka topic: one published message, in
// Thrift's binary protocol (or the compact one, with --kafka-envelope-protocol compact); servers
// read both. Evolve it by adding optional fields with new ids; never renumber or remove one, so
// that servers of different versions can read each other's records during a rolling upgrade.
// Use no uuid type: the binary reader (thriftpy2's Cython one) does not know it.

struct Envelope {
    1: i32 version,         // schema version of the writer; 1 for these fields
    2: string id,           // the message id clients see in `message` and `ack` frames
    3: string topic,        // the minimess topic (also the record key)
    4: string sender,       // uid of the publisher
    5: string body,
    6: i64 timestamp_ms,    // publish time, milliseconds since the Unix epoch, UTC
    7: string origin_node,  // node id of the server the publisher was connected to
    // Retired: stage times of the first version; no longer written or read. Kept so that the
    // ids are never reused with another meaning.
    8: i64 trace_sent_us,
    9: i64 trace_received_us,
    10: map<string, string> headers,  // what the publishing edge attached; absent when empty
}
