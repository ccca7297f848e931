//! FILE_CHECK: `track_file` holds a number written by some other prober (keepalived's
//! answer to checking thousands of servers, issue #1495): 0 is up, anything else down.

pub async fn check(path: &str) -> Result<Option<u32>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("track_file {path}: {e}"))?;
    match text.trim().parse::<i64>() {
        Ok(0) => Ok(None),
        Ok(v) => Err(format!("track_file {path} holds {v}")),
        Err(_) => Err(format!(
            "track_file {path}: {:?} is not a number",
            text.trim()
        )),
    }
}
