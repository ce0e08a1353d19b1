//! The AWS actions each function's code needs, and the template resource each acts on.
//! `template.yaml` grants exactly these, no more (tests/it/deploy.rs reads both); `CALLS`
//! names the action of every SDK operation called in the code, so a new call site fails that
//! test until the function that makes it is given the action here and in the template.

/// SDK operation (as called: `.operation()`) -> the IAM action it needs.
pub const CALLS: &[(&str, &str)] = &[
    ("get_secret_value", "secretsmanager:GetSecretValue"),
    ("send_message", "sqs:SendMessage"),
    ("send_message_batch", "sqs:SendMessage"),
    ("create_multipart_upload", "s3:PutObject"),
    ("upload_part", "s3:PutObject"),
    ("complete_multipart_upload", "s3:PutObject"),
    ("abort_multipart_upload", "s3:AbortMultipartUpload"),
    ("delete_object", "s3:DeleteObject"),
    // Presigned only: the link the caller follows is signed with this function's role.
    ("get_object", "s3:GetObject"),
    ("publish", "sns:Publish"),
];

/// (action, template resource) pairs.
type Grants = &'static [(&'static str, &'static str)];

/// Every function reads the secret at cold start.
const SECRET: (&str, &str) = ("secretsmanager:GetSecretValue", "SecretArn");
const SEND_COLLECT: (&str, &str) = ("sqs:SendMessage", "CollectQueue");
const SEND_EXPORT: (&str, &str) = ("sqs:SendMessage", "ExportQueue");
const PUT: (&str, &str) = ("s3:PutObject", "ExportBucket");
const GET: (&str, &str) = ("s3:GetObject", "ExportBucket");
/// Deleting an export or expiring one aborts its upload before removing the object.
const ABORT: (&str, &str) = ("s3:AbortMultipartUpload", "ExportBucket");
const DELETE: (&str, &str) = ("s3:DeleteObject", "ExportBucket");
/// The daily digest of `sns` alert channels.
const PUBLISH_ALERTS: (&str, &str) = ("sns:Publish", "AlertTopic");

/// Per function binary: what its code calls (routes per the route table's `function`).
pub const FUNCTIONS: &[(&str, Grants)] = &[
    // POST /instances/{id}/actions/collect queues on the instance's FIFO group.
    ("api-instances", &[SECRET, SEND_COLLECT]),
    ("api-tags", &[SECRET]),
    ("tags-bulk", &[SECRET]),
    // POST /databases/{id}/actions/refresh-tables queues a table read.
    ("api-databases", &[SECRET, SEND_COLLECT]),
    ("api-capacity", &[SECRET]),
    // POST /collections dispatches a run.
    ("api-tasks", &[SECRET, SEND_COLLECT]),
    // POST queues, GET presigns, DELETE aborts and removes.
    ("api-exports", &[SECRET, SEND_EXPORT, GET, ABORT, DELETE]),
    ("api-system", &[SECRET]),
    ("api-logs", &[SECRET]),
    ("collect-dispatch", &[SECRET, SEND_COLLECT]),
    ("collect-instance", &[SECRET]),
    // Multipart upload; a failed or superseded attempt aborts and removes its object.
    ("export-worker", &[SECRET, PUT, ABORT, DELETE]),
    // The aggregation ends with the alert evaluation, which publishes `sns` digests.
    ("aggregate", &[SECRET, PUBLISH_ALERTS]),
    // Export expiry: abandoned uploads and expired objects.
    ("maintenance", &[SECRET, ABORT, DELETE]),
    ("migrate", &[SECRET]),
];
