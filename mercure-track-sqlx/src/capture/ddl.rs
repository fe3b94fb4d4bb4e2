//! The SQL of the capture, generated per database from a model's metadata and the events of
//! the program that its changes trigger.

use mercure_track::{ModelInfo, RowChange, TriggerKey, registry};

use crate::dialect::quote;

/// What the capture of one model watches: taken from the registry of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Watched {
    pub(crate) model: ModelInfo,
    /// The trigger columns (SQL names), in column order.
    pub(crate) columns: Vec<&'static str>,
    pub(crate) insert: bool,
    pub(crate) delete: bool,
}

impl Watched {
    /// What the events of this program trigger on rows of `model`.
    pub(crate) fn of(model: ModelInfo) -> Self {
        let mut columns = Vec::new();
        let (mut insert, mut delete) = (false, false);
        for descriptor in registry::events() {
            // Only this model's triggers: two models of one program may share a table name
            // (two applications linked together), with different columns.
            for spec in registry::triggers_of(descriptor)
                .iter()
                .filter(|spec| spec.model == model)
            {
                match spec.key {
                    TriggerKey::Column(column)
                        if column.table == model.table && !columns.contains(&column.column) =>
                    {
                        columns.push(column.column);
                    }
                    TriggerKey::Row { table, change } if table == model.table => match change {
                        RowChange::Insert => insert = true,
                        RowChange::Delete => delete = true,
                    },
                    _ => {}
                }
            }
        }
        let order = |name: &&str| model.columns.iter().position(|c| c.name == *name);
        columns.sort_by_key(order);
        Self {
            model,
            columns,
            insert,
            delete,
        }
    }

    /// Whether anything is captured.
    pub(crate) fn is_empty(&self) -> bool {
        self.columns.is_empty() && !self.insert && !self.delete
    }
}

/// The name of the table holding the captured rows' keys (and a deleted row's columns).
pub(crate) fn shadow_table(table: &str) -> String {
    format!("mercure_capture__{}", table.replace('.', "__"))
}

fn name(table: &str, suffix: &str) -> String {
    quote(&format!("{}{suffix}", shadow_table(table)))
}

fn column_list(names: impl IntoIterator<Item = &'static str>, prefix: &str) -> String {
    names
        .into_iter()
        .map(|c| format!("{prefix}{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn all_columns(model: &ModelInfo) -> impl Iterator<Item = &'static str> + '_ {
    model.columns.iter().map(|c| c.name)
}

/// SQL string literal (table and column names come from the derive: plain identifiers).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// SQLite: a shadow table, and one trigger per captured operation.
pub(crate) fn sqlite_install(w: &Watched) -> Vec<String> {
    let table = w.model.table;
    let t = quote(table);
    let shadow = quote(&shadow_table(table));
    let key = w.model.primary_key_column().name;
    let mut out = vec![
        crate::capture::SQLITE_LOG.trim().to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS {shadow} AS SELECT 0 AS mercure_seq, {} FROM {t} WHERE 0",
            column_list(all_columns(&w.model), "")
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {shadow} (mercure_seq)",
            name(table, "_seq")
        ),
    ];
    let log = |op: &str, columns: &str| {
        format!(
            "INSERT INTO mercure_capture_log (table_name, op, columns) VALUES ({}, '{op}', {columns});",
            literal(table)
        )
    };
    let keep_key = |row: &str| {
        format!(
            "INSERT INTO {shadow} (mercure_seq, {}) VALUES (last_insert_rowid(), {row}.{});",
            quote(key),
            quote(key)
        )
    };
    if !w.columns.is_empty() {
        let differs: Vec<String> = w
            .columns
            .iter()
            .map(|c| format!("OLD.{0} IS NOT NEW.{0}", quote(c)))
            .collect();
        let changed: Vec<String> = w
            .columns
            .iter()
            .map(|c| {
                format!(
                    "(CASE WHEN OLD.{0} IS NOT NEW.{0} THEN {1} ELSE '' END)",
                    quote(c),
                    literal(&format!("{c},"))
                )
            })
            .collect();
        out.push(format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER UPDATE OF {} ON {t} WHEN {} BEGIN {} {} END",
            name(table, "_update"),
            column_list(w.columns.iter().copied(), ""),
            differs.join(" OR "),
            log("U", &changed.join(" || ")),
            keep_key("NEW"),
        ));
    }
    if w.insert {
        out.push(format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER INSERT ON {t} BEGIN {} {} END",
            name(table, "_insert"),
            log("I", "''"),
            keep_key("NEW"),
        ));
    }
    if w.delete {
        out.push(format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER DELETE ON {t} BEGIN {} \
             INSERT INTO {shadow} (mercure_seq, {}) VALUES (last_insert_rowid(), {}); END",
            name(table, "_delete"),
            log("D", "''"),
            column_list(all_columns(&w.model), ""),
            column_list(all_columns(&w.model), "OLD."),
        ));
    }
    out
}

/// SQLite: removes what [`sqlite_install`] made (the shared log table stays).
pub(crate) fn sqlite_uninstall(model: &ModelInfo) -> Vec<String> {
    let table = model.table;
    let mut out: Vec<String> = ["_update", "_insert", "_delete"]
        .iter()
        .map(|suffix| format!("DROP TRIGGER IF EXISTS {}", name(table, suffix)))
        .collect();
    out.push(format!(
        "DROP TABLE IF EXISTS {}",
        quote(&shadow_table(table))
    ));
    out
}

/// PostgreSQL: a shadow table, one trigger function, one trigger per captured operation (the
/// update trigger's `WHEN` skips rows whose trigger columns did not change before any call).
/// The function names the log and the shadow table in the schema current at installation (a
/// `DO` block builds it with `format`), and notifies with that schema: a writer whose
/// `search_path` differs (`psql` writing `schema.table`) still appends to that log and wakes
/// that schema's loops. (`SET search_path FROM CURRENT` on the function would do the same at
/// a cost on every call.)
pub(crate) fn postgres_install(w: &Watched) -> Vec<String> {
    let table = w.model.table;
    let t = quote(table);
    let shadow = quote(&shadow_table(table));
    let function = quote(&shadow_table(table));
    let key = quote(w.model.primary_key_column().name);
    let mut out: Vec<String> = crate::capture::POSTGRES_LOG
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {shadow} AS SELECT 0::bigint AS mercure_seq, {} FROM {t} WITH NO DATA",
        column_list(all_columns(&w.model), "")
    ));
    out.push(format!(
        "CREATE INDEX IF NOT EXISTS {} ON {shadow} (mercure_seq)",
        name(table, "_seq")
    ));
    let changed: String = w
        .columns
        .iter()
        .map(|c| {
            format!(
                "IF OLD.{0} IS DISTINCT FROM NEW.{0} THEN changed := changed || {1}; END IF;\n    ",
                quote(c),
                literal(&format!("{c},"))
            )
        })
        .collect();
    // The function's text is a `format` string: `%1$I` is the schema as an identifier, `%1$L`
    // as a literal; any other `%` is doubled.
    let esc = |text: String| text.replace('%', "%%");
    let (changed, shadow_in) = (esc(changed), esc(shadow.clone()));
    let (lit, key) = (esc(literal(table)), esc(key));
    let all = esc(column_list(all_columns(&w.model), ""));
    let old = esc(column_list(all_columns(&w.model), "OLD."));
    let log = "%1$I.mercure_capture_log";
    out.push(format!(
        "DO $mercure_install$ BEGIN EXECUTE format($mercure_function$
CREATE OR REPLACE FUNCTION %1$I.{function_in}() RETURNS trigger LANGUAGE plpgsql AS $mercure$
DECLARE
  changed text := '';
  s bigint;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    {changed}IF changed = '' THEN RETURN NULL; END IF;
    INSERT INTO {log} (table_name, op, columns) VALUES ({lit}, 'U', changed) RETURNING seq INTO s;
    INSERT INTO %1$I.{shadow_in} (mercure_seq, {key}) VALUES (s, NEW.{key});
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO {log} (table_name, op) VALUES ({lit}, 'I') RETURNING seq INTO s;
    INSERT INTO %1$I.{shadow_in} (mercure_seq, {key}) VALUES (s, NEW.{key});
  ELSE
    INSERT INTO {log} (table_name, op) VALUES ({lit}, 'D') RETURNING seq INTO s;
    INSERT INTO %1$I.{shadow_in} (mercure_seq, {all}) VALUES (s, {old});
  END IF;
  PERFORM pg_notify('mercure_capture', %1$L);
  RETURN NULL;
END
$mercure$
$mercure_function$, current_schema()); END $mercure_install$",
        function_in = esc(function.clone()),
    ));
    let mut trigger = |suffix: &str, event: String, when: String| {
        let trigger = name(table, suffix);
        out.push(format!("DROP TRIGGER IF EXISTS {trigger} ON {t}"));
        out.push(format!(
            "CREATE TRIGGER {trigger} AFTER {event} ON {t} FOR EACH ROW {when}EXECUTE FUNCTION {function}()"
        ));
    };
    if !w.columns.is_empty() {
        let differs: Vec<String> = w
            .columns
            .iter()
            .map(|c| format!("OLD.{0} IS DISTINCT FROM NEW.{0}", quote(c)))
            .collect();
        trigger(
            "_update",
            format!("UPDATE OF {}", column_list(w.columns.iter().copied(), "")),
            format!("WHEN ({}) ", differs.join(" OR ")),
        );
    }
    if w.insert {
        trigger("_insert", "INSERT".to_owned(), String::new());
    }
    if w.delete {
        trigger("_delete", "DELETE".to_owned(), String::new());
    }
    out
}

/// PostgreSQL: removes what [`postgres_install`] made (the shared log table stays).
pub(crate) fn postgres_uninstall(model: &ModelInfo) -> Vec<String> {
    let table = model.table;
    let t = quote(table);
    let mut out: Vec<String> = ["_update", "_insert", "_delete"]
        .iter()
        .map(|suffix| format!("DROP TRIGGER IF EXISTS {} ON {t}", name(table, suffix)))
        .collect();
    out.push(format!(
        "DROP FUNCTION IF EXISTS {}()",
        quote(&shadow_table(table))
    ));
    out.push(format!(
        "DROP TABLE IF EXISTS {}",
        quote(&shadow_table(table))
    ));
    out
}
