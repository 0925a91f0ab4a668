//! The pool as the adapters see it: plain, or made safe for PgBouncer in
//! transaction pooling mode.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use std::pin::Pin;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, Statement, TransactionError, TransactionOptions,
    TransactionTrait,
};

/// The pool as the adapters use it.
///
/// Behind PgBouncer in transaction pooling mode, consecutive messages of
/// one client reach the same server connection only within a transaction.
/// sqlx names every prepared statement it parses and runs it after a
/// second round trip, so there each statement outside an explicit
/// transaction runs in one of its own, and every transaction starts by
/// dropping the prepared statements other clients left on its server
/// connection (sqlx's statement cache is off, so nothing refers to them)
/// and by setting the statement timeout, which PgBouncer cannot pass at
/// connect time. Directly connected, it is the plain pool.
#[derive(Clone, Debug)]
pub struct Connection {
    pub(super) inner: DatabaseConnection,
    /// `Some` behind PgBouncer: what each transaction runs first.
    pub(super) pooled: Option<Arc<str>>,
}

impl Connection {
    async fn one_shot<T, F, Fut>(&self, run: F) -> Result<T, DbErr>
    where
        F: FnOnce(DatabaseTransaction) -> Fut + Send,
        Fut: Future<Output = (DatabaseTransaction, Result<T, DbErr>)> + Send,
        T: Send,
    {
        let txn = self.begin().await?;
        let (txn, result) = run(txn).await;
        match result {
            Ok(value) => {
                txn.commit().await?;
                Ok(value)
            }
            Err(err) => {
                let _ = txn.rollback().await;
                Err(err)
            }
        }
    }

    async fn prepare(&self, txn: DatabaseTransaction) -> Result<DatabaseTransaction, DbErr> {
        if let Some(setup) = &self.pooled {
            txn.execute_unprepared(setup).await?;
        }
        Ok(txn)
    }
}

#[async_trait]
impl ConnectionTrait for Connection {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        if self.pooled.is_none() {
            return self.inner.execute_raw(stmt).await;
        }
        self.one_shot(|txn| async move {
            let result = txn.execute_raw(stmt).await;
            (txn, result)
        })
        .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        // The simple query protocol: one message, no prepared statement.
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        if self.pooled.is_none() {
            return self.inner.query_one_raw(stmt).await;
        }
        self.one_shot(|txn| async move {
            let result = txn.query_one_raw(stmt).await;
            (txn, result)
        })
        .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if self.pooled.is_none() {
            return self.inner.query_all_raw(stmt).await;
        }
        self.one_shot(|txn| async move {
            let result = txn.query_all_raw(stmt).await;
            (txn, result)
        })
        .await
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }
}

#[async_trait]
impl TransactionTrait for Connection {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.inner.begin().await?;
        self.prepare(txn).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        let txn = self
            .inner
            .begin_with_config(isolation_level, access_mode)
            .await?;
        self.prepare(txn).await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.inner.begin_with_options(options).await?;
        self.prepare(txn).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let txn = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        match callback(&txn).await {
            Ok(value) => {
                txn.commit().await.map_err(TransactionError::Connection)?;
                Ok(value)
            }
            Err(err) => {
                let _ = txn.rollback().await;
                Err(TransactionError::Transaction(err))
            }
        }
    }
}
