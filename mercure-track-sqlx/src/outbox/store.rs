//! The outbox's SQL, all of it: the commit's insert, the relay's claim and record, the counts,
//! dead letters and redrive. Each function is one short statement or
//! one short transaction; none is ever open while the hub is called.

use super::merge::Merger;
use super::{OutboxRecord, record};
use crate::dialect::{Dialect, SqlQuery};
use crate::error::Error;

/// The outbox table's name: every statement of the outbox takes it from here.
pub(crate) const TABLE: &str = "mercure_outbox";

/// The columns [`record`](super::record) reads, in its order.
pub(crate) const RECORD_COLUMNS: &str =
    "seq, id, event_type, topics, data, private, attempts, next_attempt_at, last_error";

/// Pending: neither delivered nor dead.
pub(crate) const PENDING: &str = "delivered_at IS NULL AND dead_at IS NULL";

/// The statements the outbox module runs outside the relay, built from [`TABLE`].
pub(crate) mod statements {
    use std::sync::LazyLock;

    use super::{PENDING, RECORD_COLUMNS, TABLE};

    /// The commit's insert of one event: `$6` is both its creation time and when it is due,
    /// its lane is its topic set (`$3`).
    pub(crate) fn insert() -> &'static str {
        // On every outbox commit: built once.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO {TABLE} \
                 (id, event_type, topics, data, private, created_at, next_attempt_at, lane, batch) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $3, $7)"
            )
        });
        &SQL
    }

    /// The dead letters, oldest first.
    pub(crate) fn dead_letters() -> String {
        format!("SELECT {RECORD_COLUMNS} FROM {TABLE} WHERE dead_at IS NOT NULL ORDER BY seq")
    }

    /// How many events wait.
    pub(crate) fn pending() -> String {
        format!("SELECT COUNT(*) FROM {TABLE} WHERE {PENDING}")
    }

    /// Puts dead letters back in line (`$1`: now), all of them or (`by_id`) the one with id `$2`.
    pub(crate) fn redrive(by_id: bool) -> String {
        format!(
            "UPDATE {TABLE} SET dead_at = NULL, attempts = 0, next_attempt_at = $1, \
             last_error = NULL, group_seq = NULL, claimed_by = NULL, claimed_until = NULL, \
             created_at = $1 WHERE dead_at IS NOT NULL{}",
            if by_id { " AND id = $2" } else { "" }
        )
    }
}

/// A group of outbox rows claimed by one relay, sent as one update.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// The group's first row; its id is the update id, its seq names the group.
    pub(crate) head: OutboxRecord,
    /// The rows of the group (1 unless batch events were merged).
    pub(crate) rows: usize,
    /// When the group's first row was written (milliseconds since the epoch).
    pub(crate) created_at: i64,
}

/// A run: consecutive groups of one lane, claimed together, sent one after another in order.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// The groups, in outbox order.
    pub(crate) groups: Vec<Claimed>,
    /// When the lease of the run's rows expires (milliseconds since the epoch).
    pub(crate) until: i64,
}

/// A lease: who holds the claim and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease<'a> {
    pub(crate) owner: &'a str,
    pub(crate) until: i64,
}

/// How much one claim takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimLimits {
    /// Lanes (runs) at most.
    pub(crate) lanes: usize,
    /// Groups per run at most.
    pub(crate) run: usize,
    /// Batch events merged into one group at most.
    pub(crate) merge: usize,
}

/// `None` for the -1 that stands for NULL in the queries below (times and sequences are
/// never negative).
fn absent_if_negative(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}

fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Full merged groups read at most for one run of a lane of batch events.
const BATCH_GROUPS_PER_RUN: usize = 4;

/// Rows leased by one claim at most, before its last run: far below the bound parameters a
/// statement may have (SQLite 32 766, PostgreSQL 65 535), whatever `batch_size` says.
const MAX_ROWS_PER_CLAIM: usize = 8_192;

/// Claims runs of up to `limits.lanes` lanes whose first pending row (the lane head) is due
/// and held by no live lease, lanes of batch events first (few lanes, each carrying many events
/// per update: a hot topic's lag stays near one cycle whatever the backlog), then oldest head
/// first: each run is the head and the rows that follow
/// it in its lane (up to `limits.run` groups, batch events merged), all leased to `lease`.
///
/// The lanes are found by a loose scan of the pending index on (lane, seq): one index probe per
/// lane holding pending rows, whatever the backlog. The heads are locked by the statement that
/// chooses them (on PostgreSQL, heads another relay is claiming are skipped, and with them
/// their lanes); the rows behind a held head are then read and leased by statements that
/// nobody else can race, since every relay claims a lane only through its head.
pub(crate) async fn claim<DB: Dialect>(
    conn: &mut DB::Connection,
    lease: Lease<'_>,
    now: i64,
    limits: ClaimLimits,
) -> Result<Vec<Run>, Error> {
    let heads = format!(
        "WITH RECURSIVE lanes(lane) AS ( \
             SELECT * FROM (SELECT o.lane FROM {TABLE} o WHERE o.delivered_at IS NULL \
                 AND o.dead_at IS NULL ORDER BY o.lane LIMIT 1) AS first_lane \
             UNION ALL \
             SELECT (SELECT o.lane FROM {TABLE} o WHERE o.delivered_at IS NULL \
                 AND o.dead_at IS NULL AND o.lane > l.lane ORDER BY o.lane LIMIT 1) \
             FROM lanes l WHERE l.lane IS NOT NULL), \
         heads AS (SELECT (SELECT o.seq FROM {TABLE} o WHERE o.lane = l.lane \
                 AND o.delivered_at IS NULL AND o.dead_at IS NULL ORDER BY o.seq LIMIT 1) AS seq \
             FROM lanes l WHERE l.lane IS NOT NULL) \
         SELECT o.seq, o.lane, o.batch FROM heads h JOIN {TABLE} o ON o.seq = h.seq \
         WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= $1 \
             AND (o.claimed_until IS NULL OR o.claimed_until <= $1) \
         ORDER BY o.batch DESC, o.seq LIMIT $2{}",
        DB::OUTBOX.skip_locked
    );
    let query = DB::bind_i64(DB::bind_i64(sqlx::query(&heads), now), to_i64(limits.lanes));
    let mut lanes = Vec::new();
    for row in DB::fetch_all(conn, query).await? {
        lanes.push((
            DB::decode_i64(&row, 0)?,
            DB::decode_text(&row, 1)?,
            DB::decode_bool(&row, 2)?,
        ));
    }
    let mut runs: Vec<Vec<Forming>> = Vec::with_capacity(lanes.len());
    let mut rows = 0;
    for (head, lane, batch) in lanes {
        // Every leased row is one parameter of the lease statement (and of the recording).
        if rows >= MAX_ROWS_PER_CLAIM {
            break;
        }
        let groups = form_run::<DB>(conn, now, head, &lane, batch, limits).await?;
        rows += groups.iter().map(|g| g.seqs.len()).sum::<usize>();
        if !groups.is_empty() {
            runs.push(groups);
        }
    }
    lease_rows::<DB>(conn, lease, runs.iter().flatten()).await?;
    Ok(runs
        .into_iter()
        .map(|groups| Run {
            groups: groups.into_iter().map(|forming| forming.claimed).collect(),
            until: lease.until,
        })
        .collect())
}

/// A group being formed from the rows of a run.
struct Forming {
    claimed: Claimed,
    /// The rows' seqs, in order.
    seqs: Vec<i64>,
    /// Batch events may still join (a group formed by this claim).
    open: Option<Merger>,
    /// Whether the group is formed by this claim (its rows get `group_seq` now).
    new: bool,
}

/// Reads the rows of `lane` from its held head on and forms up to `limits.run` groups.
async fn form_run<DB: Dialect>(
    conn: &mut DB::Connection,
    now: i64,
    head: i64,
    lane: &str,
    batch: bool,
    limits: ClaimLimits,
) -> Result<Vec<Forming>, Error> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, created_at, batch, COALESCE(group_seq, -1), \
             COALESCE(claimed_until, -1) FROM {TABLE} \
         WHERE lane = $1 AND seq >= $2 AND {PENDING} ORDER BY seq LIMIT $3"
    );
    // A lane of batch events merges up to `merge` rows into one group: it reads enough rows
    // for a few full groups (a hot topic gets several hundred events a second).
    let rows_wanted = if batch {
        limits
            .merge
            .saturating_mul(BATCH_GROUPS_PER_RUN.min(limits.run))
            .max(limits.run)
    } else {
        limits.run
    };
    let query = DB::bind_i64(
        DB::bind_i64(DB::bind_text(sqlx::query(&sql), lane), head),
        to_i64(rows_wanted.clamp(1, MAX_ROWS_PER_CLAIM)),
    );
    let rows = DB::fetch_all(conn, query).await?;
    let mut groups: Vec<Forming> = Vec::new();
    // Rows already counted in a group formed before (their group's head is in this run).
    let mut taken: std::collections::HashSet<i64> = std::collections::HashSet::new();
    for row in &rows {
        let (record, due) = record::<DB>(row)?;
        if taken.contains(&record.seq) {
            continue;
        }
        let created_at = DB::decode_i64(row, 9)?;
        let row_batch = DB::decode_bool(row, 10)?;
        let group = absent_if_negative(DB::decode_i64(row, 11)?);
        let claimed_until = absent_if_negative(DB::decode_i64(row, 12)?);
        // The run ends at a row not due yet or leased by another relay (on PostgreSQL a row
        // that became visible late), or at a member of a group whose head is not here.
        let available = due <= now && claimed_until.is_none_or(|until| until <= now);
        if !available || group.is_some_and(|group| group != record.seq) {
            break;
        }
        if let Some(current) = groups.last_mut()
            && group.is_none()
            && row_batch
            && current.claimed.rows < limits.merge
            && current.claimed.head.event_type == record.event_type
            && current.claimed.head.update.private == record.update.private
            && current
                .open
                .as_mut()
                .is_some_and(|merger| merger.add(&record.update.data))
        {
            current.claimed.rows += 1;
            current.seqs.push(record.seq);
            continue;
        }
        if groups.len() >= limits.run {
            break;
        }
        let mut forming = Forming {
            open: None,
            seqs: vec![record.seq],
            new: group.is_none(),
            claimed: Claimed {
                head: record,
                rows: 1,
                created_at,
            },
        };
        if group.is_some() && row_batch {
            // A group formed before (a retry, a takeover): the same rows, so the same update
            // goes out under the same id. (An individual event is a group of its own.)
            let members = group_members::<DB>(conn, forming.claimed.head.seq).await?;
            if !members.is_empty() {
                if let Some(mut merger) = Merger::new(&forming.claimed.head.update.data) {
                    for (_, data) in &members {
                        merger.add(data);
                    }
                    forming.claimed.head.update.data = merger.finish();
                }
                forming.claimed.rows += members.len();
                for (seq, _) in members {
                    taken.insert(seq);
                    forming.seqs.push(seq);
                }
            }
        } else if row_batch {
            forming.open = Merger::new(&forming.claimed.head.update.data);
        }
        groups.push(forming);
    }
    for forming in &mut groups {
        if let Some(merger) = forming.open.take()
            && forming.claimed.rows > 1
        {
            forming.claimed.head.update.data = merger.finish();
        }
    }
    Ok(groups)
}

/// The other rows of a group formed before, in order: seq and data.
async fn group_members<DB: Dialect>(
    conn: &mut DB::Connection,
    group: i64,
) -> Result<Vec<(i64, String)>, Error> {
    let sql = format!(
        "SELECT seq, data FROM {TABLE} WHERE group_seq = $1 AND seq <> $1 AND {PENDING} \
         ORDER BY seq"
    );
    let mut rows = Vec::new();
    for row in DB::fetch_all(conn, DB::bind_i64(sqlx::query(&sql), group)).await? {
        rows.push((DB::decode_i64(&row, 0)?, DB::decode_text(&row, 1)?));
    }
    Ok(rows)
}

/// Leases the rows of the claimed groups and names the new groups (`group_seq` = the seq of
/// the group's first row), in one statement.
async fn lease_rows<'a, DB: Dialect>(
    conn: &mut DB::Connection,
    lease: Lease<'_>,
    groups: impl Iterator<Item = &'a Forming> + Clone,
) -> Result<(), Error> {
    let seqs: Vec<i64> = groups
        .clone()
        .flat_map(|g| g.seqs.iter().copied())
        .collect();
    if seqs.is_empty() {
        return Ok(());
    }
    // The rows are bound in group order ($3 on): a new group's rows are a stretch of those
    // parameters, and its first one names it.
    let mut cases = String::new();
    let mut position = 3;
    for group in groups {
        if group.new && group.seqs.len() > 1 {
            cases.push_str(&format!(
                " WHEN seq IN ({}) THEN ${position}",
                placeholders(position, group.seqs.len())
            ));
        }
        position += group.seqs.len();
    }
    let group_seq = if cases.is_empty() {
        "COALESCE(group_seq, seq)".to_owned()
    } else {
        format!("COALESCE(group_seq, CASE{cases} ELSE seq END)")
    };
    let sql = format!(
        "UPDATE {TABLE} SET claimed_by = $1, claimed_until = $2, group_seq = {group_seq} \
         WHERE seq IN ({}) AND {PENDING}",
        placeholders(3, seqs.len())
    );
    let mut query = DB::bind_i64(DB::bind_text(sqlx::query(&sql), lease.owner), lease.until);
    for seq in &seqs {
        query = DB::bind_i64(query, *seq);
    }
    DB::execute(conn, query).await?;
    Ok(())
}

/// What to write for one group after the hub answered.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// Delivered at the given time.
    Delivered,
    /// Try again at `due` (milliseconds since the epoch); the error is kept.
    Retry { due: i64, error: String },
    /// Dead-lettered.
    Dead { error: String },
    /// Not sent (an earlier group of its run failed, or the run ran out of lease): back in
    /// line as it is, no attempt counted.
    Release,
}

/// Records outcomes, inside the caller's short transaction. Only rows still claimed by
/// `owner` change (a relay whose lease was taken over writes nothing). Returns the rows changed
/// per outcome, in the order given.
pub(crate) async fn record_outcomes<DB: Dialect>(
    conn: &mut DB::Connection,
    owner: &str,
    now: i64,
    outcomes: &[(i64, Record)],
) -> Result<Vec<u64>, Error> {
    // A delivered row keeps `claimed_by`: it names the relay that delivered it.
    const DELIVERED: &str = "attempts = attempts + 1, claimed_until = NULL";
    let tx = conn;
    let mut changed = vec![0; outcomes.len()];
    // The delivered groups together, in one statement; the released ones in another.
    for delivered in [true, false] {
        let groups: Vec<(usize, i64)> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, (_, record))| match record {
                Record::Delivered => delivered,
                Record::Release => !delivered,
                _ => false,
            })
            .map(|(n, (group, _))| (n, *group))
            .collect();
        if groups.is_empty() {
            continue;
        }
        let (set, first) = if delivered {
            (format!("delivered_at = $2, {DELIVERED}"), 3)
        } else {
            ("claimed_by = NULL, claimed_until = NULL".to_owned(), 2)
        };
        let sql = format!(
            "UPDATE {TABLE} SET {set} WHERE claimed_by = $1 AND {PENDING} \
             AND group_seq IN ({}) RETURNING group_seq",
            placeholders(first, groups.len())
        );
        let mut query = DB::bind_text(sqlx::query(&sql), owner);
        if delivered {
            query = DB::bind_i64(query, now);
        }
        for (_, group) in &groups {
            query = DB::bind_i64(query, *group);
        }
        let position: std::collections::HashMap<i64, usize> =
            groups.iter().map(|(n, group)| (*group, *n)).collect();
        for row in DB::fetch_all(tx, query).await? {
            if let Some(n) = position.get(&DB::decode_i64(&row, 0)?) {
                changed[*n] += 1;
            }
        }
    }
    // A retry or a dead letter counts an attempt and ends the lease.
    let retry = format!(
        "UPDATE {TABLE} SET next_attempt_at = $1, last_error = $2, \
         attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL \
         WHERE group_seq = $3 AND claimed_by = $4 AND {PENDING}"
    );
    let dead = format!(
        "UPDATE {TABLE} SET dead_at = $1, last_error = $2, \
         attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL \
         WHERE group_seq = $3 AND claimed_by = $4 AND {PENDING}"
    );
    for (n, (group, record)) in outcomes.iter().enumerate() {
        let query: SqlQuery<'_, DB> = match record {
            Record::Delivered | Record::Release => continue,
            Record::Retry { due, error } => {
                DB::bind_text(DB::bind_i64(sqlx::query(&retry), *due), error)
            }
            Record::Dead { error } => DB::bind_text(DB::bind_i64(sqlx::query(&dead), now), error),
        };
        let query = DB::bind_text(DB::bind_i64(query, *group), owner);
        changed[n] = DB::execute(tx, query).await?;
    }
    Ok(changed)
}

/// When the relay should look again if it claimed nothing: the earliest retry due later, or
/// the earliest lease of another relay that will expire.
pub(crate) async fn next_due<DB: Dialect>(
    conn: &mut DB::Connection,
    owner: &str,
    now: i64,
) -> Result<Option<i64>, Error> {
    let sql = format!(
        "SELECT COALESCE(MIN(CASE WHEN next_attempt_at > $1 THEN next_attempt_at END), -1), \
                COALESCE(MIN(CASE WHEN claimed_by <> $2 AND claimed_until > $1 THEN claimed_until END), -1) \
         FROM {TABLE} WHERE {PENDING}"
    );
    let query = DB::bind_text(DB::bind_i64(sqlx::query(&sql), now), owner);
    let Some(row) = DB::fetch_optional(conn, query).await? else {
        return Ok(None);
    };
    let retry = absent_if_negative(DB::decode_i64(&row, 0)?);
    let lease = absent_if_negative(DB::decode_i64(&row, 1)?);
    Ok(match (retry, lease) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Pending events, the oldest one's creation time, events under a live lease, dead letters.
pub(crate) async fn counts<DB: Dialect>(
    conn: &mut DB::Connection,
    now: i64,
) -> Result<(i64, Option<i64>, i64, i64), Error> {
    let sql = format!(
        "SELECT \
           COALESCE(SUM(CASE WHEN {PENDING} THEN 1 ELSE 0 END), 0), \
           COALESCE(MIN(CASE WHEN {PENDING} THEN created_at END), -1), \
           COALESCE(SUM(CASE WHEN {PENDING} AND claimed_until > $1 THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
         FROM {TABLE}"
    );
    let query = DB::bind_i64(sqlx::query(&sql), now);
    let Some(row) = DB::fetch_optional(conn, query).await? else {
        return Ok((0, None, 0, 0));
    };
    Ok((
        DB::decode_i64(&row, 0)?,
        absent_if_negative(DB::decode_i64(&row, 1)?),
        DB::decode_i64(&row, 2)?,
        DB::decode_i64(&row, 3)?,
    ))
}

/// Deletes delivered rows older than `cutoff`.
pub(crate) async fn prune<DB: Dialect>(
    conn: &mut DB::Connection,
    cutoff: i64,
) -> Result<u64, Error> {
    let sql = format!("DELETE FROM {TABLE} WHERE delivered_at IS NOT NULL AND delivered_at < $1");
    let query = DB::bind_i64(sqlx::query(&sql), cutoff);
    Ok(DB::execute(conn, query).await?)
}
