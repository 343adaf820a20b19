//! Group commit of SQLite's per-request durable writes: the replay-ledger
//! row of an assertion ([`Store::first_use_of_assertion`]), the audit
//! record of an access ([`Store::append_audit`]) and a pushed document
//! ([`Store::put_document`]).
//!
//! Each of these must be durable before the request goes on (`synchronous =
//! FULL`: the WAL is fsynced at every commit), so on SQLite each used to
//! cost a commit, and under load most of a relayed retrieval's CPU went to
//! the two fsyncs and the wake-ups around them. One writer thread now owns a
//! connection of its own and takes the writes of every request waiting at
//! that moment into one `BEGIN IMMEDIATE` transaction: one fsync for the
//! batch, and each request is answered only after that commit. A request
//! alone is written as before, with one autocommit statement.
//!
//! Nothing is weakened: every write is still committed (and fsynced) before
//! its caller is answered; a batch that fails is rolled back and its writes
//! are retried one at a time, so one write's failure is its own (fail
//! closed: the caller gets `Err`). The audit chain is extended in the order
//! the writes arrive; its head is read inside the transaction, so other
//! processes on the same file still extend one chain (the triggers of
//! migration 0013 check every record anyway).
//!
//! A document goes this way too (issue 17): through the pool each insert
//! cost a connection's hand-off to sqlx's SQLite thread and, on its
//! release, a second one (sqlx pings every connection given back); and each
//! of the pool's eight connections, taken in turn, filled its own page cache
//! with the documents' pages (the gateway's resident memory grew by about
//! 1 MiB per connection). The writer's one connection does both once.
//!
//! The writer is a thread of its own that holds its SQLite connection
//! directly (rusqlite, over the same SQLite library as sqlx), not a task
//! driving an sqlx connection: sqlx runs every statement on a thread of the
//! connection's own and hands the statement there and its result back, two
//! more cross-thread wake-ups per write on top of the request's hand-off to
//! the writer and the answer (issue 17: a pushed summary's CPU). A request
//! now wakes the writer once, and the writer wakes the request once. The
//! writer's waits (the fsync, a lock another process holds) block only the
//! writer.
//!
//! PostgreSQL needs none of this: the server does its own group commit
//! across connections and replicas.
//!
//! [`Store::put_document`]: crate::Store::put_document
//! [`Store::append_audit`]: crate::Store::append_audit
//! [`Store::first_use_of_assertion`]: crate::Store::first_use_of_assertion

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::chain::{AuditRow, ChainHead, INSERT_AUDIT_EVENT, Link, to_hash, to_seq};
use crate::error::StoreError;

/// Records (`issuer`, `jti`) held until `$3` unless it is held until `$4` or
/// later; one row affected means first use. An entry already past its time
/// is taken over as if absent, so the answer does not depend on whether a
/// purge has run yet.
pub(crate) const RECORD_FIRST_USE: &str = "INSERT INTO assertion_ids (issuer, jti, expires_at_us) VALUES ($1, $2, $3) \
     ON CONFLICT (issuer, jti) DO UPDATE SET expires_at_us = excluded.expires_at_us \
     WHERE assertion_ids.expires_at_us < $4";

/// The writer connection's page cache, in KiB (`PRAGMA cache_size`, negative:
/// KiB). The writer only inserts: a pushed document's pages are new overflow
/// pages that are written once and not read again by it, so a larger cache
/// fills with them (1 MiB within about twenty 44 KB summaries) and holds
/// memory for nothing; the b-tree pages an insert walks are used on every
/// write and stay in a small cache (issue 17: resident memory after pushes).
const WRITER_CACHE_KIB: u32 = 256;

/// Most writes taken into one transaction.
const MAX_BATCH: usize = 64;

/// Writes that may wait for the writer; a caller beyond this waits to queue
/// (back-pressure, not an error).
const QUEUE: usize = 1_024;

/// Prepared statements the writer keeps: its four (document, ledger, audit
/// record, chain head) and room to spare.
const STATEMENT_CACHE: usize = 8;

/// A replay-ledger write: the pair is recorded unless held until `now` or
/// later (the statement of [`Store::first_use_of_assertion`]).
///
/// [`Store::first_use_of_assertion`]: crate::Store::first_use_of_assertion
pub(crate) struct LedgerWrite {
    pub(crate) issuer: String,
    pub(crate) jti: String,
    pub(crate) until_us: i64,
    pub(crate) now_us: i64,
}

/// An audit append, owned so that it can wait in the queue.
pub(crate) struct AuditWrite {
    pub(crate) patient_identifier: Option<String>,
    pub(crate) outcome: String,
    pub(crate) content: Vec<u8>,
    pub(crate) recorded_at_us: i64,
    pub(crate) content_sha256: [u8; 32],
}

impl AuditWrite {
    fn row(&self) -> AuditRow<'_> {
        AuditRow {
            patient_identifier: self.patient_identifier.as_deref(),
            outcome: &self.outcome,
            content: &self.content,
            recorded_at_us: self.recorded_at_us,
            content_sha256: self.content_sha256,
        }
    }
}

/// A document insert (the statement of [`Store::put_document`]), owned so
/// that it can wait in the queue; `true` when it inserted (its identifier
/// was free).
///
/// [`Store::put_document`]: crate::Store::put_document
pub(crate) struct DocumentWrite {
    pub(crate) id: String,
    pub(crate) identifier_system: String,
    pub(crate) identifier_value: String,
    pub(crate) bundle_type: String,
    pub(crate) patient_identifier: Option<String>,
    pub(crate) received_at_us: i64,
    pub(crate) sender: String,
    pub(crate) document_type: Option<String>,
    pub(crate) content_type: String,
    pub(crate) sha256: [u8; 32],
    pub(crate) content: Vec<u8>,
}

impl DocumentWrite {
    /// The insert on PostgreSQL (SQLite's writer binds the same statement
    /// itself: [`document`]).
    pub(crate) fn query(
        &self,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(INSERT_DOCUMENT)
            .bind(self.id.as_str())
            .bind(self.identifier_system.as_str())
            .bind(self.identifier_value.as_str())
            .bind(self.bundle_type.as_str())
            .bind(self.patient_identifier.as_deref())
            .bind(self.received_at_us)
            .bind(self.sender.as_str())
            .bind(self.document_type.as_deref())
            .bind(self.content_type.as_str())
            .bind(&self.sha256[..])
            .bind(self.content.as_slice())
    }
}

/// Stores a document unless its identifier is taken (one row affected:
/// stored). SQLite numbers `$n` parameters in order of first appearance,
/// so both backends bind the same values in the same order.
const INSERT_DOCUMENT: &str = "INSERT INTO documents (id, identifier_system, identifier_value, bundle_type, \
     patient_identifier, received_at_us, sender, document_type, content_type, \
     sha256, content) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (identifier_system, identifier_value) DO NOTHING";

/// The chain head as the database holds it (inside the writer's `BEGIN
/// IMMEDIATE` transaction, which holds the write lock).
const READ_CHAIN_HEAD: &str = "SELECT seq, hash FROM audit_chain_head WHERE id = 1";

/// A write waiting for the writer, with where its outcome goes.
enum Write {
    Ledger(LedgerWrite, oneshot::Sender<Result<bool, StoreError>>),
    Audit(AuditWrite, oneshot::Sender<Result<Link, StoreError>>),
    /// Answered with the write given back (its content is the stored
    /// document's, not copied).
    Document(
        Box<DocumentWrite>,
        oneshot::Sender<Result<(bool, Box<DocumentWrite>), StoreError>>,
    ),
}

enum Job {
    Write(Write),
    /// Stop: close the connection; later writes get an error.
    Close(oneshot::Sender<()>),
}

/// What a write gave inside a batch, before the commit answers it.
enum Done {
    Ledger(bool),
    Audit(Link),
    Document(bool),
}

/// How many writes the writer committed, in how many commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitCounts {
    /// Ledger, audit and document writes committed.
    pub writes: u64,
    /// Commits that carried them (fewer than `writes` when requests shared
    /// one).
    pub commits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

impl Counters {
    fn committed(&self, writes: usize) {
        self.writes
            .fetch_add(u64::try_from(writes).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
}

/// The handle the store's clones share: a queue to the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

impl SqliteWriter {
    /// Opens the writer's own connection to the SQLite file at `path` (the
    /// pool's settings: WAL, `synchronous = FULL`, foreign keys, the busy
    /// timeout; a smaller page cache: [`WRITER_CACHE_KIB`]) and starts its
    /// thread. The pool has created the file and applied the migrations.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let conn = open(path, busy_timeout)?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, &thread_counters))?;
        Ok(Self { jobs, counters })
    }

    /// Writes committed so far, and in how many commits.
    pub(crate) fn counts(&self) -> GroupCommitCounts {
        GroupCommitCounts {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    /// Records an assertion id (see [`LedgerWrite`]): `true` on first use.
    pub(crate) async fn ledger(&self, write: LedgerWrite) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Write(Write::Ledger(write, reply))).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Appends an audit record at the chain head.
    pub(crate) async fn audit(&self, write: AuditWrite) -> Result<Link, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Write(Write::Audit(write, reply))).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Inserts a document unless its identifier is taken: `true` when it
    /// did, with the write given back.
    pub(crate) async fn document(
        &self,
        write: DocumentWrite,
    ) -> Result<(bool, DocumentWrite), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Write(Write::Document(Box::new(write), reply)))
            .await?;
        let (inserted, write) = answer.await.map_err(|_| stopped())??;
        Ok((inserted, *write))
    }

    /// Stops the writer after the writes queued before this call.
    pub(crate) async fn close(&self) {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job::Close(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }

    async fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.send(job).await.map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Config("the store is closed".into())
}

/// The writer's connection, with the settings of the pool's (module
/// `backend`): the durable commit (`synchronous = FULL`) is per connection.
fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    // No mutex of SQLite's own: the connection is this thread's alone.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "the SQLite writer's journal mode is {mode}, not WAL"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -{WRITER_CACHE_KIB};"
    ))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The writer thread: waits for a write, takes every write queued by then
/// (up to [`MAX_BATCH`]), commits them together, answers each.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>, counters: &Counters) {
    // The chain head as this writer last committed it; `None` when unknown
    // (at start, or after a failure).
    let mut head: Option<ChainHead> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut writes = Vec::with_capacity(batch.len());
        let mut close = None;
        for job in batch.drain(..) {
            match job {
                Job::Close(reply) => close = Some(reply),
                Job::Write(write) => writes.push(write),
            }
        }
        match writes.len() {
            0 => {}
            1 => {
                if let Some(job) = writes.pop() {
                    write_alone(&conn, &mut head, job, counters);
                }
            }
            _ => write_batch(&mut conn, &mut head, writes, counters),
        }
        if let Some(reply) = close {
            // Returning drops the queue: writes still in it, or sent later,
            // get an error.
            let _ = conn.close();
            let _ = reply.send(());
            return;
        }
    }
    let _ = conn.close();
}

/// One write in its own autocommit statement (or, for an audit record whose
/// head this writer does not know, a short `BEGIN IMMEDIATE` transaction).
fn write_alone(conn: &Connection, head: &mut Option<ChainHead>, job: Write, counters: &Counters) {
    match job {
        Write::Ledger(write, reply) => {
            let written = ledger(conn, &write);
            if written.is_ok() {
                counters.committed(1);
            }
            let _ = reply.send(written);
        }
        Write::Audit(write, reply) => {
            let written = audit_alone(conn, head, &write);
            if written.is_ok() {
                counters.committed(1);
            }
            let _ = reply.send(written);
        }
        Write::Document(write, reply) => {
            let written = document(conn, &write).map(|inserted| (inserted, write));
            if written.is_ok() {
                counters.committed(1);
            }
            let _ = reply.send(written);
        }
    }
}

fn document(conn: &Connection, write: &DocumentWrite) -> Result<bool, StoreError> {
    let inserted = conn.prepare_cached(INSERT_DOCUMENT)?.execute(params![
        write.id,
        write.identifier_system,
        write.identifier_value,
        write.bundle_type,
        write.patient_identifier,
        write.received_at_us,
        write.sender,
        write.document_type,
        write.content_type,
        &write.sha256[..],
        write.content,
    ])?;
    Ok(inserted == 1)
}

fn ledger(conn: &Connection, write: &LedgerWrite) -> Result<bool, StoreError> {
    let inserted = conn.prepare_cached(RECORD_FIRST_USE)?.execute(params![
        write.issuer,
        write.jti,
        write.until_us,
        write.now_us,
    ])?;
    Ok(inserted == 1)
}

/// Inserts the record at `link`.
fn insert_audit(conn: &Connection, row: &AuditRow<'_>, link: &Link) -> Result<(), StoreError> {
    let seq =
        i64::try_from(link.0).map_err(|_| StoreError::Corrupt("audit seq overflow".into()))?;
    conn.prepare_cached(INSERT_AUDIT_EVENT)?.execute(params![
        seq,
        row.recorded_at_us,
        row.patient_identifier,
        row.outcome,
        row.content,
        &link.1[..],
        &link.2[..],
    ])?;
    Ok(())
}

/// The chain head as the database holds it.
fn read_head(conn: &Connection) -> Result<ChainHead, StoreError> {
    let (seq, hash): (i64, Vec<u8>) = conn
        .prepare_cached(READ_CHAIN_HEAD)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok((to_seq(seq)?, to_hash(hash, "chain head hash")?))
}

fn audit_alone(
    conn: &Connection,
    head: &mut Option<ChainHead>,
    write: &AuditWrite,
) -> Result<Link, StoreError> {
    let row = write.row();
    if let Some(known) = head.take() {
        let link = row.link(known)?;
        // The triggers refuse a record that does not extend the head (another
        // process appended): then read the head as below.
        if insert_audit(conn, &row, &link).is_ok() {
            *head = Some((link.0, link.2));
            return Ok(link);
        }
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let link = row.link(read_head(&tx)?)?;
    insert_audit(&tx, &row, &link)?;
    tx.commit()?;
    *head = Some((link.0, link.2));
    Ok(link)
}

/// Several writes in one transaction; if anything fails, each is written
/// alone so that each gets its own outcome.
fn write_batch(
    conn: &mut Connection,
    head: &mut Option<ChainHead>,
    jobs: Vec<Write>,
    counters: &Counters,
) {
    match commit_together(conn, &jobs) {
        Ok((done, new_head)) => {
            counters.committed(jobs.len());
            if new_head.is_some() {
                *head = new_head;
            }
            for (job, done) in jobs.into_iter().zip(done) {
                match (job, done) {
                    (Write::Ledger(_, reply), Done::Ledger(first)) => {
                        let _ = reply.send(Ok(first));
                    }
                    (Write::Audit(_, reply), Done::Audit(link)) => {
                        let _ = reply.send(Ok(link));
                    }
                    (Write::Document(write, reply), Done::Document(inserted)) => {
                        let _ = reply.send(Ok((inserted, write)));
                    }
                    // Results are produced in job order, one per job.
                    _ => {}
                }
            }
        }
        Err(_) => {
            *head = None;
            for job in jobs {
                write_alone(conn, head, job, counters);
            }
        }
    }
}

fn commit_together(
    conn: &mut Connection,
    jobs: &[Write],
) -> Result<(Vec<Done>, Option<ChainHead>), StoreError> {
    // Dropped without `commit` (an error below), the transaction rolls back.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut chain: Option<ChainHead> = None;
    let mut done = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job {
            Write::Ledger(write, _) => done.push(Done::Ledger(ledger(&tx, write)?)),
            Write::Document(write, _) => done.push(Done::Document(document(&tx, write)?)),
            Write::Audit(write, _) => {
                let current = match chain {
                    Some(h) => h,
                    None => read_head(&tx)?,
                };
                let row = write.row();
                let link = row.link(current)?;
                insert_audit(&tx, &row, &link)?;
                chain = Some((link.0, link.2));
                done.push(Done::Audit(link));
            }
        }
    }
    tx.commit()?;
    Ok((done, chain))
}
