//! The relay's SQL: claim, record, and the counts. Each function is one short statement or
//! one short transaction; none is ever open while the hub is called.

use super::merge::Merger;
use super::{OutboxRecord, RECORD_COLUMNS, record};
use crate::dialect::{Dialect, SqlQuery};
use crate::error::Error;

/// Pending: neither delivered nor dead.
const PENDING: &str = "delivered_at IS NULL AND dead_at IS NULL";

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

/// A lease: who holds the claim and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease<'a> {
    pub(crate) owner: &'a str,
    pub(crate) until: i64,
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

/// Claims up to `limit` lane heads that are due and held by no live lease, oldest first, and
/// the batch events merged with them. One statement takes the heads (atomically: on
/// PostgreSQL, rows another relay is claiming are skipped); the merge partners of a head are
/// then taken by statements that nobody else can race, since they sit behind a held head.
pub(crate) async fn claim<DB: Dialect>(
    conn: &mut DB::Connection,
    lease: Lease<'_>,
    now: i64,
    limit: usize,
    max_merge: usize,
) -> Result<Vec<Claimed>, Error> {
    // The heads are computed once (materialized): a correlated "no earlier pending row in the
    // lane" check made PostgreSQL rescan the lane for every candidate (seconds for 2 000 rows).
    let sql = format!(
        "WITH heads AS MATERIALIZED (SELECT MIN(seq) AS seq FROM mercure_outbox \
             WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY lane) \
         UPDATE mercure_outbox SET claimed_by = $1, claimed_until = $2, \
             group_seq = CASE WHEN batch THEN group_seq ELSE seq END \
         WHERE seq IN (SELECT o.seq FROM heads h JOIN mercure_outbox o ON o.seq = h.seq \
             WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= $3 \
             AND (o.claimed_until IS NULL OR o.claimed_until <= $3) \
             ORDER BY o.seq LIMIT $4{}) \
         RETURNING {RECORD_COLUMNS}, created_at, lane, batch, COALESCE(group_seq, -1)",
        DB::OUTBOX.skip_locked
    );
    let query = sqlx::query(&sql);
    let query = DB::bind_i64(DB::bind_text(query, lease.owner), lease.until);
    let query = DB::bind_i64(
        DB::bind_i64(query, now),
        i64::try_from(limit).unwrap_or(i64::MAX),
    );
    let rows = DB::fetch_all(conn, query).await?;
    let mut heads = Vec::with_capacity(rows.len());
    for row in &rows {
        let (head, _) = record::<DB>(row)?;
        let created_at = DB::decode_i64(row, 9)?;
        let lane = DB::decode_text(row, 10)?;
        let batch = DB::decode_bool(row, 11)?;
        let group = absent_if_negative(DB::decode_i64(row, 12)?);
        heads.push((head, created_at, lane, batch, group));
    }
    heads.sort_by_key(|(head, ..)| head.seq);
    let mut claimed = Vec::with_capacity(heads.len());
    for (mut head, created_at, lane, batch, group) in heads {
        let mut rows = 1;
        if batch {
            let datas = match group {
                Some(group) => claim_group::<DB>(conn, lease, group).await?,
                None => form_group::<DB>(conn, lease, &head, &lane, max_merge).await?,
            };
            if !datas.is_empty() {
                if let Some(mut merger) = Merger::new(&head.update.data) {
                    for data in &datas {
                        merger.add(data);
                    }
                    head.update.data = merger.finish();
                }
                rows += datas.len();
            }
        }
        claimed.push(Claimed {
            head,
            rows,
            created_at,
        });
    }
    Ok(claimed)
}

/// Re-claims the other rows of a group formed before (a retry, a takeover): the same rows, so
/// the same update goes out under the same id.
async fn claim_group<DB: Dialect>(
    conn: &mut DB::Connection,
    lease: Lease<'_>,
    group: i64,
) -> Result<Vec<String>, Error> {
    let sql = format!(
        "UPDATE mercure_outbox SET claimed_by = $1, claimed_until = $2 \
         WHERE group_seq = $3 AND seq <> $3 AND {PENDING} RETURNING seq, data"
    );
    let query = DB::bind_i64(
        DB::bind_i64(DB::bind_text(sqlx::query(&sql), lease.owner), lease.until),
        group,
    );
    let mut rows = Vec::new();
    for row in DB::fetch_all(conn, query).await? {
        rows.push((DB::decode_i64(&row, 0)?, DB::decode_text(&row, 1)?));
    }
    rows.sort_by_key(|(seq, _)| *seq);
    Ok(rows.into_iter().map(|(_, data)| data).collect())
}

/// Forms a new group behind the batch event `head`: the consecutive batch events of the same
/// type and privacy that follow it in its lane and merge with it, at most `max_merge` in all.
async fn form_group<DB: Dialect>(
    conn: &mut DB::Connection,
    lease: Lease<'_>,
    head: &OutboxRecord,
    lane: &str,
    max_merge: usize,
) -> Result<Vec<String>, Error> {
    let sql = format!(
        "SELECT seq, event_type, private, batch, COALESCE(group_seq, -1), data FROM mercure_outbox \
         WHERE lane = $1 AND seq > $2 AND {PENDING} ORDER BY seq LIMIT $3"
    );
    let more = i64::try_from(max_merge.saturating_sub(1)).unwrap_or(i64::MAX);
    let mut members = Vec::new();
    let mut datas = Vec::new();
    if more > 0 {
        let query = DB::bind_i64(
            DB::bind_i64(DB::bind_text(sqlx::query(&sql), lane), head.seq),
            more,
        );
        let rows = DB::fetch_all(conn, query).await?;
        let mut merger = Merger::new(&head.update.data);
        for row in &rows {
            let mergeable = DB::decode_text(row, 1)? == head.event_type
                && DB::decode_bool(row, 2)? == head.update.private
                && DB::decode_bool(row, 3)?
                && DB::decode_i64(row, 4)? < 0;
            let data = DB::decode_text(row, 5)?;
            let merged = mergeable && merger.as_mut().is_some_and(|merger| merger.add(&data));
            if !merged {
                break;
            }
            members.push(DB::decode_i64(row, 0)?);
            datas.push(data);
        }
    }
    members.push(head.seq);
    let sql = format!(
        "UPDATE mercure_outbox SET group_seq = $1, claimed_by = $2, claimed_until = $3 \
         WHERE {PENDING} AND seq IN ({})",
        placeholders(4, members.len())
    );
    let mut query = DB::bind_i64(
        DB::bind_text(DB::bind_i64(sqlx::query(&sql), head.seq), lease.owner),
        lease.until,
    );
    for seq in &members {
        query = DB::bind_i64(query, *seq);
    }
    DB::execute(conn, query).await?;
    Ok(datas)
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
    // The delivered groups together, in one statement.
    let delivered: Vec<(usize, i64)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, (_, record))| matches!(record, Record::Delivered))
        .map(|(n, (group, _))| (n, *group))
        .collect();
    if !delivered.is_empty() {
        let sql = format!(
            "UPDATE mercure_outbox SET delivered_at = $1, {DELIVERED} \
             WHERE claimed_by = $2 AND {PENDING} AND group_seq IN ({}) RETURNING group_seq",
            placeholders(3, delivered.len())
        );
        let mut query = DB::bind_text(DB::bind_i64(sqlx::query(&sql), now), owner);
        for (_, group) in &delivered {
            query = DB::bind_i64(query, *group);
        }
        for row in DB::fetch_all(tx, query).await? {
            let group = DB::decode_i64(&row, 0)?;
            if let Some((n, _)) = delivered.iter().find(|(_, g)| *g == group) {
                changed[*n] += 1;
            }
        }
    }
    for (n, (group, record)) in outcomes.iter().enumerate() {
        let query: SqlQuery<'_, DB> = match record {
            Record::Delivered => continue,
            Record::Retry { due, error } => DB::bind_text(
                DB::bind_i64(
                    sqlx::query(
                        "UPDATE mercure_outbox SET next_attempt_at = $1, last_error = $2, \
                         attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL \
                         WHERE group_seq = $3 AND claimed_by = $4 \
                         AND delivered_at IS NULL AND dead_at IS NULL",
                    ),
                    *due,
                ),
                error,
            ),
            Record::Dead { error } => DB::bind_text(
                DB::bind_i64(
                    sqlx::query(
                        "UPDATE mercure_outbox SET dead_at = $1, last_error = $2, \
                         attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL \
                         WHERE group_seq = $3 AND claimed_by = $4 \
                         AND delivered_at IS NULL AND dead_at IS NULL",
                    ),
                    now,
                ),
                error,
            ),
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
         FROM mercure_outbox WHERE {PENDING}"
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
    let query = DB::bind_i64(
        sqlx::query(
            "SELECT \
               COALESCE(SUM(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN 1 ELSE 0 END), 0), \
               COALESCE(MIN(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN created_at END), -1), \
               COALESCE(SUM(CASE WHEN delivered_at IS NULL AND dead_at IS NULL \
                   AND claimed_until > $1 THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
             FROM mercure_outbox",
        ),
        now,
    );
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
    let query = DB::bind_i64(
        sqlx::query(
            "DELETE FROM mercure_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1",
        ),
        cutoff,
    );
    Ok(DB::execute(conn, query).await?)
}
