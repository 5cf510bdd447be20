//! What `instarec status` asks live MariaDB/MySQL servers, and how their
//! positions compare with the archive's end.
//!
//! The primary: its binlog end (GTID state, then file:pos), the sizes of
//! its binlog files (to count bytes across a rotation), its clock (event
//! timestamps are in it) and whether semi-sync is in effect. The standby:
//! the GTID state it applied and its own Seconds_Behind_Master. Each server
//! is optional: an unreachable one is reported, not fatal.

use super::index::ChunkIndex;
use super::position::{BinlogPoint, GtidState};
use super::primary_status;
use super::server_addr::server_addr as addr;
use crate::config::Config;
use crate::engines::mysql::MysqlSourceOptions;
use chrono::{DateTime, Utc};
use instarec_mysql::{BinlogPosition, ServerFlavor};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};
use serde::Serialize;
use std::time::Duration;

/// What the JSON report shows under "live" for engine = "mysql": the keys
/// PostgreSQL has, in GTID notation, plus the primary's file:pos.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStatus {
    /// @@gtid_binlog_pos (MariaDB) or @@gtid_executed (MySQL).
    pub primary_position: Option<String>,
    /// SHOW MASTER STATUS as "file:pos".
    pub primary_binlog: Option<String>,
    /// An upper bound on the age of the oldest transaction the primary has
    /// and the archive lacks; 0 when the archive holds every one.
    pub archive_lag_seconds: Option<f64>,
    pub primary_error: Option<String>,
    /// @@gtid_slave_pos (MariaDB) or @@gtid_executed (MySQL).
    pub standby_replay_position: Option<String>,
    /// The standby's Seconds_Behind_Master (null while its SQL thread is stopped).
    pub standby_replay_delay_seconds: Option<f64>,
    pub standby_error: Option<String>,
}

/// The primary as one probe saw it.
#[derive(Debug, Clone)]
pub struct PrimarySeen {
    pub end: BinlogPoint,
    /// SHOW BINARY LOGS: (file, size), oldest first.
    pub files: Vec<(String, u64)>,
    /// The primary's clock, which its event timestamps use.
    pub now: DateTime<Utc>,
    /// Commits wait for the shipper's ack and nobody else's: semi-sync is
    /// ON (Rpl_semi_sync_master_status or _source_status), it has exactly
    /// one semi-sync client, and the shipper's server_id is a registered
    /// replica. Another semi-sync replica could ack commits the archive
    /// lacks, so two clients do not count.
    pub semi_sync_active: bool,
}

#[derive(Debug, Clone)]
pub struct StandbySeen {
    pub applied: GtidState,
    pub seconds_behind_master: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// None when [primary] is not configured.
    pub primary: Option<Result<PrimarySeen, String>>,
    /// None when [standby] url is not configured.
    pub standby: Option<Result<StandbySeen, String>>,
}

/// Asks the configured primary and standby, each within `timeout`.
pub async fn probe(config: &Config, timeout: Duration) -> Probe {
    let primary = async {
        let p = config.primary.as_ref()?;
        let opts = MysqlSourceOptions::from_primary(p)
            .map_err(|e| format!("{e:#}"))
            .and_then(|s| opts(&s.url, "[primary] url"));
        Some(match opts {
            Ok(o) => {
                within_timeout(timeout, addr(&o), query_primary(o, p.replica_server_id())).await
            }
            Err(e) => Err(e),
        })
    };
    let standby = async {
        let url = config.standby.as_ref()?.url.as_ref()?;
        Some(match opts(url.expose(), "[standby] url") {
            Ok(o) => within_timeout(timeout, addr(&o), query_standby(o)).await,
            Err(e) => Err(e),
        })
    };
    // Both at once: two unreachable servers cost one timeout, not two.
    let (primary, standby) = tokio::join!(primary, standby);
    Probe { primary, standby }
}

fn opts(url: &str, what: &str) -> Result<Opts, String> {
    Opts::from_url(url).map_err(|e| {
        format!("{what} is not a mysql:// URL ({e}); write it as mysql://user:password@host:port/")
    })
}

async fn within_timeout<T>(
    timeout: Duration,
    addr: String,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}

/// Connects, or says why not: a refused or unreachable server in the
/// driver's words for it, with what to check.
async fn connect(opts: Opts) -> Result<(Conn, ServerFlavor), String> {
    let addr = addr(&opts);
    let mut conn = Conn::new(opts).await.map_err(|e| match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(source)) => {
            instarec_mysql::MysqlError::Connect {
                addr: addr.clone(),
                source,
            }
            .to_string()
        }
        other => format!("{addr}: {other}"),
    })?;
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let flavor = if version.unwrap_or_default().contains("MariaDB") {
        ServerFlavor::Mariadb
    } else {
        ServerFlavor::Mysql
    };
    Ok((conn, flavor))
}

/// See [`PrimarySeen::semi_sync_active`]. Both plugin generations' names:
/// MySQL 8.0.26+ `semisync_source` says "source", MariaDB and older MySQL
/// "master". Absent variables (no plugin) mean not in effect.
async fn shipper_alone_acks(conn: &mut Conn, shipper_server_id: u32) -> anyhow::Result<bool> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN
               ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status',
                'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_source_clients')",
        )
        .await?;
    let value = |suffix: &str| {
        rows.iter()
            .find(|(name, _)| name.to_ascii_lowercase().ends_with(suffix))
            .map(|(_, v)| v.clone())
    };
    let on = value("_status").is_some_and(|v| v.eq_ignore_ascii_case("ON"));
    let clients: Option<u64> = value("_clients").and_then(|v| v.parse().ok());
    if !on || clients != Some(1) {
        return Ok(false);
    }
    let replicas: Vec<mysql_async::Row> = conn.query("SHOW SLAVE HOSTS").await?;
    Ok(replicas
        .iter()
        .any(|r| r.get_opt::<u32, _>(0).and_then(Result::ok) == Some(shipper_server_id)))
}

async fn query_primary(opts: Opts, shipper_server_id: u32) -> Result<PrimarySeen, String> {
    let server = addr(&opts);
    let (mut conn, flavor) = connect(opts).await?;
    let seen = async {
        let end = primary_status::binlog_end(&mut conn, flavor).await?;
        let logs: Vec<Row> = conn.query("SHOW BINARY LOGS").await?;
        let files = logs
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.get_opt::<String, _>(0)?.ok()?,
                    r.get_opt::<u64, _>(1)?.ok()?,
                ))
            })
            .collect();
        let micros: Option<i64> = conn
            .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
            .await?;
        let now = micros
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .ok_or_else(|| anyhow::anyhow!("UNIX_TIMESTAMP(NOW(6)) answered nothing usable"))?;
        let semi_sync_active = shipper_alone_acks(&mut conn, shipper_server_id).await?;
        Ok::<_, anyhow::Error>(PrimarySeen {
            end,
            files,
            now,
            semi_sync_active,
        })
    }
    .await
    .map_err(|e| format!("{server}: {e:#}"));
    let _ = conn.disconnect().await;
    seen
}

async fn query_standby(opts: Opts) -> Result<StandbySeen, String> {
    let server = addr(&opts);
    let (mut conn, flavor) = connect(opts).await?;
    let seen = async {
        let sql = match flavor {
            ServerFlavor::Mariadb => "SELECT @@global.gtid_slave_pos",
            ServerFlavor::Mysql => "SELECT @@global.gtid_executed",
        };
        let text: Option<String> = conn.query_first(sql).await?;
        let applied = GtidState::parse_from(flavor, &text.unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("{sql} answered something unreadable: {e}"))?;
        // MySQL 8.4 knows only the new name.
        let row: Option<Row> = match conn.query_first("SHOW SLAVE STATUS").await {
            Ok(r) => r,
            Err(_) => conn.query_first("SHOW REPLICA STATUS").await?,
        };
        let behind = row.and_then(|r| {
            ["Seconds_Behind_Master", "Seconds_Behind_Source"]
                .into_iter()
                .find_map(|c| r.get_opt::<Option<u64>, _>(c))
                .and_then(Result::ok)
                .flatten()
        });
        Ok::<_, anyhow::Error>(StandbySeen {
            applied,
            seconds_behind_master: behind.map(|s| s as f64),
        })
    }
    .await
    .map_err(|e| format!("{server}: {e:#}"));
    let _ = conn.disconnect().await;
    seen
}

/// The archive's end GTID state, in the flavour its index names.
pub fn archived_gtid(end: &ChunkIndex) -> Option<GtidState> {
    GtidState::parse(&end.flavor, &end.gtid_pos_after).ok()
}

/// A GTID state as a position record holds it (the flavour is not written
/// there): the archive's flavour when known, else whichever parses.
pub fn recorded_gtid(text: &str, flavor: Option<&str>) -> Option<GtidState> {
    match flavor {
        Some(f) => GtidState::parse(f, text).ok(),
        None => GtidState::parse("mariadb", text)
            .or_else(|_| GtidState::parse("mysql", text))
            .ok(),
    }
}

/// Transactions `later` has and `earlier` lacks: per MariaDB domain the
/// seq_no difference (an upper bound, as promote counts lost
/// transactions), or the size of the MySQL set difference. None across
/// flavours.
pub fn transactions_missing(later: &GtidState, earlier: &GtidState) -> Option<u64> {
    match (later, earlier) {
        (GtidState::Mariadb(l), GtidState::Mariadb(e)) => {
            Some(l.missing_from(e).iter().map(|r| r.count()).sum())
        }
        (GtidState::Mysql(l), GtidState::Mysql(e)) => Some(l.subtract(e).count()),
        _ => None,
    }
}

/// Binlog bytes from `archived` to `primary`: within one file, or across
/// files whose sizes SHOW BINARY LOGS listed. None when a file in between
/// is unknown (purged, another server's binlog).
pub fn bytes_behind(
    primary: &BinlogPosition,
    files: &[(String, u64)],
    archived: &BinlogPosition,
) -> Option<u64> {
    if primary.file == archived.file {
        return Some(primary.pos.saturating_sub(archived.pos));
    }
    let from = files.iter().position(|(f, _)| *f == archived.file)?;
    let to = files.iter().position(|(f, _)| *f == primary.file)?;
    if to < from {
        return None;
    }
    let rest_of_archived_file = files[from].1.checked_sub(archived.pos)?;
    let between: u64 = files[from + 1..to].iter().map(|(_, size)| size).sum();
    Some(rest_of_archived_file + between + primary.pos)
}

/// How far the archive is behind the primary, measured on a live primary.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ArchiveLag {
    pub bytes: Option<u64>,
    pub transactions: Option<u64>,
    /// 0 when the archive holds every transaction of the primary. Else the
    /// time since the last archived event's timestamp: every transaction
    /// the archive lacks was logged, so acknowledged, after that event,
    /// whose timestamp (when its statement started, rounded down) is no
    /// later than when it was logged. So no unarchived commit is older.
    /// (A session that sets @@timestamp by hand can defeat this bound.)
    pub seconds: Option<f64>,
}

/// `end` is the archive's newest chunk; `same_server` says whether it is
/// of the current epoch (its file:pos is in the primary's binlog).
pub fn archive_lag(
    end: Option<&ChunkIndex>,
    same_server: bool,
    primary: &PrimarySeen,
) -> ArchiveLag {
    let archived = end.and_then(archived_gtid);
    let transactions = archived
        .as_ref()
        .and_then(|a| transactions_missing(&primary.end.gtid, a));
    let bytes = end.filter(|_| same_server).and_then(|e| {
        let archived = BinlogPosition {
            file: e.file.clone(),
            pos: e.end_pos,
        };
        bytes_behind(&primary.end.at, &primary.files, &archived)
    });
    let seconds = match (transactions, end) {
        (Some(0), _) => Some(0.0),
        (_, Some(e)) => {
            let logged = DateTime::<Utc>::from_timestamp(i64::from(e.last_ts), 0);
            logged.map(|t| (primary.now - t).num_milliseconds().max(0) as f64 / 1000.0)
        }
        _ => None,
    };
    ArchiveLag {
        bytes,
        transactions,
        seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Epoch;
    use instarec_mysql::MariadbGtidPos;

    fn mariadb(text: &str) -> GtidState {
        GtidState::parse("mariadb", text).unwrap()
    }

    fn at(file: &str, pos: u64) -> BinlogPosition {
        BinlogPosition {
            file: file.into(),
            pos,
        }
    }

    fn chunk(gtid_pos_after: &str, file: &str, end_pos: u64, last_ts: u32) -> ChunkIndex {
        ChunkIndex {
            epoch: Epoch(1),
            file: file.into(),
            first_pos: 256,
            end_pos,
            flavor: "mariadb".into(),
            first_gtid: None,
            last_gtid: None,
            gtid_pos_after: gtid_pos_after.into(),
            first_ts: last_ts,
            last_ts,
            events: 1,
            bytes: end_pos - 256,
            chunk: "binlog/x".into(),
        }
    }

    fn primary(gtid: &str, file: &str, pos: u64, now: i64) -> PrimarySeen {
        PrimarySeen {
            end: BinlogPoint {
                gtid: mariadb(gtid),
                at: at(file, pos),
            },
            files: vec![
                ("b.000001".into(), 1000),
                ("b.000002".into(), 700),
                ("b.000003".into(), 400),
            ],
            now: DateTime::from_timestamp(now, 0).unwrap(),
            semi_sync_active: false,
        }
    }

    #[test]
    fn transactions_are_seq_no_gaps_summed_over_domains() {
        let n = |a, b| transactions_missing(&mariadb(a), &mariadb(b));
        assert_eq!(n("0-1-50,1-1-3", "0-1-45"), Some(8));
        assert_eq!(n("0-1-50,1-1-3", "0-1-50,1-1-3"), Some(0));
        assert_eq!(
            n("0-1-40", "0-1-45"),
            Some(0),
            "a standby ahead lags nothing"
        );
        assert_eq!(n("0-1-1", ""), Some(1));
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mysql = |t: &str| GtidState::parse("mysql", &format!("{uuid}:{t}")).unwrap();
        assert_eq!(transactions_missing(&mysql("1-10"), &mysql("1-4")), Some(6));
        assert_eq!(
            transactions_missing(&mysql("1-10"), &mariadb("0-1-4")),
            None
        );
    }

    #[test]
    fn bytes_within_a_file_and_across_listed_files_only() {
        let files = primary("", "b.000003", 0, 0).files;
        let b = |p: BinlogPosition, a: BinlogPosition| bytes_behind(&p, &files, &a);
        assert_eq!(b(at("b.000001", 900), at("b.000001", 400)), Some(500));
        // The rest of b.000001, all of b.000002, then 300 bytes of b.000003.
        assert_eq!(
            b(at("b.000003", 300), at("b.000001", 400)),
            Some(600 + 700 + 300)
        );
        assert_eq!(b(at("b.000002", 100), at("b.000001", 1000)), Some(100));
        assert_eq!(
            b(at("b.000003", 300), at("a.000009", 400)),
            None,
            "not listed"
        );
        assert_eq!(
            b(at("b.000001", 300), at("b.000002", 400)),
            None,
            "archive ahead"
        );
        assert_eq!(
            b(at("b.000002", 1), at("b.000001", 4000)),
            None,
            "beyond the file"
        );
    }

    #[test]
    fn caught_up_is_zero_and_behind_is_bounded_by_the_last_archived_event() {
        let end = chunk("0-1-42", "b.000003", 400, 1_700_000_000);
        let caught_up = archive_lag(
            Some(&end),
            true,
            &primary("0-1-42", "b.000003", 400, 1_700_000_100),
        );
        assert_eq!(
            caught_up,
            ArchiveLag {
                bytes: Some(0),
                transactions: Some(0),
                seconds: Some(0.0)
            }
        );
        let behind = archive_lag(
            Some(&end),
            true,
            &primary("0-1-45", "b.000003", 900, 1_700_000_007),
        );
        assert_eq!(
            behind,
            ArchiveLag {
                bytes: Some(500),
                transactions: Some(3),
                seconds: Some(7.0)
            }
        );
        let other_epoch = archive_lag(
            Some(&end),
            false,
            &primary("0-1-45", "b.000003", 900, 1_700_000_007),
        );
        assert_eq!(
            other_epoch.bytes, None,
            "another server's file names say nothing"
        );
        assert_eq!(
            archive_lag(None, true, &primary("0-1-45", "b.000003", 9, 0)),
            ArchiveLag::default()
        );
    }

    #[test]
    fn recorded_positions_parse_in_the_archive_flavour_or_any() {
        let pos: MariadbGtidPos = "0-1-42".parse().unwrap();
        assert_eq!(recorded_gtid("0-1-42", None), Some(GtidState::Mariadb(pos)));
        assert_eq!(recorded_gtid("0-1-42", Some("mysql")), None);
        assert!(recorded_gtid("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-3", None).is_some());
    }
}
