//! The one error type of the web layer.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer: a status and a message for the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
    /// For invalid settings: every problem, keyed by its entry (`"problems"` in the answer).
    pub problems: Vec<rampart_settings::Problem>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
            problems: Vec::new(),
        }
    }

    /// Settings that do not validate: `400` with every problem, keyed by its entry.
    pub fn invalid(problems: Vec<rampart_settings::Problem>) -> ApiError {
        ApiError {
            message: rampart_settings::SettingsErrors(problems.clone())
                .to_string()
                .replace('\n', "; "),
            problems,
            ..ApiError::bad_request("")
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
            retry_after: None,
            problems: Vec::new(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            retry_after: None,
            problems: Vec::new(),
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "authentication required: use HTTP Basic with an appliance account".into(),
            retry_after: None,
            problems: Vec::new(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            retry_after: None,
            problems: Vec::new(),
        }
    }

    /// A fault of ours; the details go to the appliance log, not to the client.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "internal error in web handler");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error; see the appliance log".into(),
            retry_after: None,
            problems: Vec::new(),
        }
    }

    /// The client must slow down (failed logins); it may try again after `secs`.
    pub fn too_many_requests(message: impl Into<String>, secs: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: message.into(),
            retry_after: Some(secs),
            problems: Vec::new(),
        }
    }

    /// Cluster mode: the cluster database cannot be reached, so nothing shared can change.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after: Some(10),
            problems: Vec::new(),
        }
    }

    /// The appliance is busy with this kind of request; try again in a second.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after: Some(1),
            problems: Vec::new(),
        }
    }
}

impl From<rampart_store::StoreError> for ApiError {
    fn from(e: rampart_store::StoreError) -> ApiError {
        match e {
            rampart_store::StoreError::Unavailable(_) => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(e),
        }
    }
}

impl From<rampart_policy::edit::EditError> for ApiError {
    fn from(e: rampart_policy::edit::EditError) -> ApiError {
        use rampart_policy::edit::EditError;
        match e {
            EditError::NotFound(_) => ApiError::not_found(e.to_string()),
            EditError::Duplicate(_) => ApiError::conflict(e.to_string()),
            EditError::Invalid(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.problems.is_empty() {
            Json(serde_json::json!({ "error": self.message }))
        } else {
            Json(serde_json::json!({ "error": self.message, "problems": self.problems }))
        };
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"Rampart\""),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}
