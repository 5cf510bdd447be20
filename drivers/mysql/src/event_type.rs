//! Binlog event type codes: MySQL's, MariaDB's (160+), and any other code
//! kept as `Other` so an event we do not know still round-trips byte-exact.

/// Declares the enum and both directions of its mapping from one list, so
/// they cannot drift apart.
macro_rules! event_types {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        /// The type_code byte of a binlog event header.
        ///
        /// `EventType::from(code)` never yields `Other` for a code that has a
        /// name, so `u8::from(EventType::from(c)) == c` for every byte.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($(#[$doc])* $name,)*
            Other(u8),
        }

        impl From<u8> for EventType {
            fn from(code: u8) -> Self {
                match code {
                    $($code => EventType::$name,)*
                    other => EventType::Other(other),
                }
            }
        }

        impl From<EventType> for u8 {
            fn from(t: EventType) -> u8 {
                match t {
                    $(EventType::$name => $code,)*
                    EventType::Other(code) => code,
                }
            }
        }
    };
}

event_types! {
    Unknown = 0,
    StartV3 = 1,
    Query = 2,
    Stop = 3,
    Rotate = 4,
    Intvar = 5,
    Slave = 7,
    AppendBlock = 9,
    DeleteFile = 11,
    Rand = 13,
    UserVar = 14,
    FormatDescription = 15,
    Xid = 16,
    BeginLoadQuery = 17,
    ExecuteLoadQuery = 18,
    TableMap = 19,
    WriteRowsV1 = 23,
    UpdateRowsV1 = 24,
    DeleteRowsV1 = 25,
    Incident = 26,
    Heartbeat = 27,
    Ignorable = 28,
    RowsQuery = 29,
    WriteRows = 30,
    UpdateRows = 31,
    DeleteRows = 32,
    /// MySQL GTID_LOG_EVENT (33).
    MysqlGtid = 33,
    AnonymousGtid = 34,
    PreviousGtids = 35,
    TransactionContext = 36,
    ViewChange = 37,
    XaPrepare = 38,
    PartialUpdateRows = 39,
    TransactionPayload = 40,
    HeartbeatV2 = 41,
    /// MySQL 8.3+ GTID_TAGGED_LOG_EVENT (42).
    MysqlGtidTagged = 42,
    /// MariaDB ANNOTATE_ROWS_EVENT (160): the SQL text of a row event group.
    AnnotateRows = 160,
    /// MariaDB BINLOG_CHECKPOINT_EVENT (161).
    BinlogCheckpoint = 161,
    /// MariaDB GTID_EVENT (162): starts an event group.
    MariadbGtid = 162,
    /// MariaDB GTID_LIST_EVENT (163): the binlog state at the file start.
    GtidList = 163,
    /// MariaDB START_ENCRYPTION_EVENT (164).
    StartEncryption = 164,
    QueryCompressed = 165,
    WriteRowsCompressedV1 = 166,
    UpdateRowsCompressedV1 = 167,
    DeleteRowsCompressedV1 = 168,
    WriteRowsCompressed = 169,
    UpdateRowsCompressed = 170,
    DeleteRowsCompressed = 171,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_named_codes_are_never_other() {
        let mut named = 0;
        for code in 0..=255u8 {
            let t = EventType::from(code);
            assert_eq!(u8::from(t), code, "{t:?}");
            if !matches!(t, EventType::Other(_)) {
                named += 1;
            }
        }
        assert_eq!(named, 48);
        // An `Other` built by hand with a named code still encodes to that code.
        assert_eq!(u8::from(EventType::Other(4)), 4);
    }

    #[test]
    fn known_codes_have_their_names() {
        assert_eq!(EventType::from(4), EventType::Rotate);
        assert_eq!(EventType::from(15), EventType::FormatDescription);
        assert_eq!(EventType::from(33), EventType::MysqlGtid);
        assert_eq!(EventType::from(160), EventType::AnnotateRows);
        assert_eq!(EventType::from(161), EventType::BinlogCheckpoint);
        assert_eq!(EventType::from(162), EventType::MariadbGtid);
        assert_eq!(EventType::from(163), EventType::GtidList);
        assert_eq!(EventType::from(164), EventType::StartEncryption);
        assert_eq!(EventType::from(200), EventType::Other(200));
    }
}
