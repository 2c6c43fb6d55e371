//! Kingdee WebAPI wire shapes: the `ResponseStatus` envelope (HTTP 200 even
//! for business errors), errors hidden inside query arrays, MsgCodes, and
//! what each failure means for the caller.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Service names (prefix `Kingdee.BOS.WebApi.ServicesStub.`).
pub const DYNAMIC_FORM: &str = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService";
pub const AUTH: &str = "Kingdee.BOS.WebApi.ServicesStub.AuthService";

/// The "session lost" message (MsgCode 1).
pub const SESSION_LOST: &str = "会话信息已丢失，请重新登录";

/// One error inside a ResponseStatus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KdError {
    pub field_name: Option<String>,
    pub message: Option<String>,
    #[serde(rename = "DIndex")]
    pub d_index: Option<i64>,
}

/// A created or changed document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SuccessEntity {
    pub id: Value,
    pub number: Option<String>,
    #[serde(rename = "DIndex")]
    pub d_index: Option<i64>,
}

/// `Result.ResponseStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResponseStatus {
    pub error_code: Option<i64>,
    pub is_success: bool,
    pub errors: Vec<KdError>,
    /// Kingdee's spelling.
    pub success_entitys: Vec<SuccessEntity>,
    pub success_messages: Vec<Value>,
    pub msg_code: i64,
}

/// What went wrong talking to Kingdee, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KingdeeError {
    /// Credentials refused or the session is gone and re-authentication
    /// failed (MsgCode 1 after a fresh login, login failures). Alert; do not
    /// retry writes.
    #[error("Kingdee credentials: {0}")]
    Credentials(String),
    /// The session was lost during a write: whether the write happened is
    /// unknown. The caller must look before writing again.
    #[error("Kingdee session lost during a write; outcome unknown: {0}")]
    SessionLostDuringWrite(String),
    /// Network-control conflicts (13), edit locks, call limits (14),
    /// timeouts and 5xx: retry with backoff.
    #[error("Kingdee transient failure (MsgCode {code}): {message}")]
    Transient { code: i64, message: String },
    /// The data was refused (8 bad parameter, 9 field/value not found, 11
    /// validation): the order goes to exception with this message.
    #[error("Kingdee refused the data (MsgCode {code}){}: {message}", field.as_ref().map(|f| format!(" at {f}")).unwrap_or_default())]
    Data { code: i64, field: Option<String>, message: String },
    /// Anything else the ERP reported.
    #[error("Kingdee error (MsgCode {code}): {message}")]
    Other { code: i64, message: String },
    /// The answer did not have the documented shape.
    #[error("unexpected Kingdee answer: {0}")]
    Protocol(String),
}

impl KingdeeError {
    /// Should the same call simply be tried again later?
    pub fn is_transient(&self) -> bool {
        matches!(self, KingdeeError::Transient { .. })
    }

    /// Classifies a failed ResponseStatus.
    pub fn from_status(s: &ResponseStatus) -> KingdeeError {
        let message = s.errors.iter().filter_map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
        let message = if message.is_empty() { "no message".to_string() } else { message };
        let field = s.errors.iter().find_map(|e| e.field_name.clone()).filter(|f| !f.is_empty());
        match s.msg_code {
            1 => KingdeeError::Credentials(message),
            13 | 14 => KingdeeError::Transient { code: s.msg_code, message },
            8 | 9 | 11 => KingdeeError::Data { code: s.msg_code, field, message },
            // Edit-lock conflicts come with other codes but say so.
            _ if message.contains("冲突") || message.contains("稍候") => {
                KingdeeError::Transient { code: s.msg_code, message }
            }
            code => KingdeeError::Other { code, message },
        }
    }
}

/// Pulls `Result.ResponseStatus` out of a document-operation answer.
pub fn response_status(v: &Value) -> Option<ResponseStatus> {
    serde_json::from_value(v.get("Result")?.get("ResponseStatus")?.clone()).ok()
}

/// An ExecuteBillQuery answer: rows, or the error hidden in the array.
pub fn query_rows(text: &str) -> Result<Vec<Vec<Value>>, KingdeeError> {
    let v: Value = serde_json::from_str(text).map_err(|e| KingdeeError::Protocol(format!("{e}: {}", snippet(text))))?;
    // A top-level envelope (some servers) or `[[{"Result": ...}]]`.
    if let Some(s) = response_status(&v) {
        return Err(KingdeeError::from_status(&s));
    }
    let Value::Array(rows) = v else { return Err(KingdeeError::Protocol(format!("not an array: {}", snippet(text)))) };
    if let Some(Value::Array(first)) = rows.first()
        && let Some(s) = first.first().and_then(response_status)
        && !s.is_success
    {
        return Err(KingdeeError::from_status(&s));
    }
    rows.into_iter()
        .map(|r| match r {
            Value::Array(cells) => Ok(cells),
            other => Err(KingdeeError::Protocol(format!("row is not an array: {other}"))),
        })
        .collect()
}

fn snippet(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_inside_query_arrays_are_found_and_classified() {
        let text = r#"[[{"Result":{"ResponseStatus":{"ErrorCode":500,"IsSuccess":false,"Errors":[{"FieldName":null,"Message":"元数据中标识为 FNoSuchField 的字段不存在","DIndex":0}],"SuccessEntitys":[],"SuccessMessages":[],"MsgCode":9}}}]]"#;
        let e = query_rows(text).unwrap_err();
        assert!(matches!(&e, KingdeeError::Data { code: 9, .. }), "{e:?}");
        assert!(e.to_string().contains("FNoSuchField"));
        let e = query_rows(&text.replace("\"MsgCode\":9", "\"MsgCode\":1")).unwrap_err();
        assert!(matches!(e, KingdeeError::Credentials(_)));
        let e = query_rows(&text.replace("\"MsgCode\":9", "\"MsgCode\":13")).unwrap_err();
        assert!(e.is_transient());
        assert_eq!(query_rows(r#"[["1","a"],["2","b"]]"#).unwrap().len(), 2);
        assert_eq!(query_rows("[]").unwrap().len(), 0);
    }
}
