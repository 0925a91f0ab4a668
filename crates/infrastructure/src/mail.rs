//! [`Mailer`] adapters: SMTP with lettre, and a log "mailer" for
//! development that writes each message (and so its link) to the log.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use userhub_domain::model::Mail;
use userhub_domain::ports::{MailError, Mailer};

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), port 587 by default.
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS"), port 465 by default.
    Tls,
    /// No encryption, port 25 by default: only for a relay on a trusted network.
    None,
}

impl SmtpTls {
    /// The usual port of this mode.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// Where and how to send mail.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    /// Server host name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// Login, if the server wants one.
    pub credentials: Option<(String, SecretString)>,
    /// The `From` of every message, `Name <address>` or an address.
    pub from: String,
    /// Longest wait for the server at each step.
    pub timeout: Duration,
}

/// Sends through an SMTP server, one connection per message.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for these settings; nothing is connected yet.
    ///
    /// # Errors
    /// A `from` that is no mailbox, or a host TLS cannot be set up for.
    pub fn new(settings: &SmtpSettings) -> Result<Self, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("MAIL_FROM `{}`: {e}", settings.from))?;
        let builder = match settings.tls {
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                settings.host.as_str(),
            )),
        }
        .map_err(|e| format!("SMTP_HOST `{}`: {e}", settings.host))?;
        let mut builder = builder.port(settings.port).timeout(Some(settings.timeout));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .as_str()
            .parse()
            .map_err(|e| MailError::Permanent(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| MailError::Permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // A 5xx answer will not change; anything else (refused or lost
            // connection, timeout, 4xx) may.
            Err(err) if err.is_permanent() => Err(MailError::Permanent(err.to_string())),
            Err(err) => Err(MailError::Transient(err.to_string())),
        }
    }
}

/// Writes each message to the log instead of sending it: development
/// without a mail server (the settings refuse it in production).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::info!(
            to = %mail.to.as_str(),
            subject = %mail.subject,
            "mail not sent (SMTP_HOST is empty); its text:\n{}",
            mail.text
        );
        Ok(())
    }
}
