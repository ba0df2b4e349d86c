//! The REST-XML documents of CloudFront API version 2020-05-31: parsing `InvalidationBatch`,
//! writing `Invalidation`, `InvalidationList`, `Distribution` and `ErrorResponse`.

use jiff::Timestamp;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::paths::RawBatch;
use super::state::{DistributionInfo, InvalidationPage, InvalidationRecord};

/// The XML namespace of every CloudFront 2020-05-31 document.
pub const NAMESPACE: &str = "http://cloudfront.amazonaws.com/doc/2020-05-31/";
const DECLARATION: &str = "<?xml version=\"1.0\"?>\n";

/// CloudFront's timestamp format: ISO 8601, UTC, milliseconds, e.g. `2019-12-05T18:24:51.407Z`.
pub fn format_time(t: Timestamp) -> String {
    format!(
        "{}.{:03}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_millisecond()
    )
}

#[derive(Deserialize)]
struct BatchIn {
    #[serde(rename = "Paths")]
    paths: Option<PathsIn>,
    #[serde(rename = "CallerReference")]
    caller_reference: Option<String>,
}

#[derive(Deserialize)]
struct PathsIn {
    #[serde(rename = "Quantity")]
    quantity: Option<String>,
    #[serde(rename = "Items")]
    items: Option<ItemsIn>,
}

#[derive(Deserialize)]
struct ItemsIn {
    #[serde(rename = "Path", default)]
    path: Vec<String>,
}

fn root_name(body: &str) -> Result<String, ApiError> {
    let mut reader = quick_xml::Reader::from_str(body);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Ok(e.local_name().into_inner().to_string());
            }
            Ok(Event::Eof) => {
                return Err(ApiError::malformed_xml(
                    "the request body holds no XML element",
                ));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(ApiError::malformed_xml(format!(
                    "the request body is not well-formed XML: {e}"
                )));
            }
        }
    }
}

/// Parses a `CreateInvalidation` body. An empty body is `MissingBody`; anything that is not an
/// `InvalidationBatch` document is `MalformedXML`.
pub fn parse_invalidation_batch(body: &[u8]) -> Result<RawBatch, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::missing_body());
    }
    let body = std::str::from_utf8(body)
        .map_err(|_| ApiError::malformed_xml("the request body is not UTF-8"))?;
    let root = root_name(body)?;
    if root != "InvalidationBatch" {
        return Err(ApiError::malformed_xml(format!(
            "expected an InvalidationBatch document, got <{root}>"
        )));
    }
    let parsed: BatchIn = quick_xml::de::from_str(body).map_err(|e| {
        ApiError::malformed_xml(format!("the InvalidationBatch cannot be read: {e}"))
    })?;
    let has_paths = parsed.paths.is_some();
    let (quantity, items) = match parsed.paths {
        Some(p) => (p.quantity, p.items.map(|i| i.path)),
        None => (None, None),
    };
    Ok(RawBatch {
        quantity,
        items,
        has_paths,
        caller_reference: parsed.caller_reference,
    })
}

fn to_document<T: Serialize>(root: &str, value: &T) -> String {
    let xml = quick_xml::se::to_string_with_root(root, value)
        .expect("the response structures always serialize");
    format!("{DECLARATION}{xml}")
}

#[derive(Serialize)]
struct InvalidationOut<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "Id")]
    id: &'a str,
    #[serde(rename = "Status")]
    status: &'static str,
    #[serde(rename = "CreateTime")]
    create_time: String,
    #[serde(rename = "InvalidationBatch")]
    batch: BatchOut<'a>,
}

#[derive(Serialize)]
struct BatchOut<'a> {
    #[serde(rename = "Paths")]
    paths: PathsOut<'a>,
    #[serde(rename = "CallerReference")]
    caller_reference: &'a str,
}

#[derive(Serialize)]
struct PathsOut<'a> {
    #[serde(rename = "Quantity")]
    quantity: usize,
    #[serde(rename = "Items", skip_serializing_if = "Option::is_none")]
    items: Option<PathItems<'a>>,
}

#[derive(Serialize)]
struct PathItems<'a> {
    #[serde(rename = "Path")]
    path: &'a [String],
}

/// The `Invalidation` document of `CreateInvalidation` and `GetInvalidation`.
pub fn invalidation(record: &InvalidationRecord) -> String {
    to_document(
        "Invalidation",
        &InvalidationOut {
            xmlns: NAMESPACE,
            id: &record.id,
            status: record.status.as_str(),
            create_time: format_time(record.create_time),
            batch: BatchOut {
                paths: PathsOut {
                    quantity: record.paths.len(),
                    items: (!record.paths.is_empty()).then_some(PathItems {
                        path: &record.paths,
                    }),
                },
                caller_reference: &record.caller_reference,
            },
        },
    )
}

#[derive(Serialize)]
struct InvalidationListOut<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "Marker")]
    marker: &'a str,
    #[serde(rename = "NextMarker", skip_serializing_if = "Option::is_none")]
    next_marker: Option<&'a str>,
    #[serde(rename = "MaxItems")]
    max_items: usize,
    #[serde(rename = "IsTruncated")]
    is_truncated: bool,
    #[serde(rename = "Quantity")]
    quantity: usize,
    #[serde(rename = "Items", skip_serializing_if = "Option::is_none")]
    items: Option<SummaryItems<'a>>,
}

#[derive(Serialize)]
struct SummaryItems<'a> {
    #[serde(rename = "InvalidationSummary")]
    summaries: Vec<SummaryOut<'a>>,
}

#[derive(Serialize)]
struct SummaryOut<'a> {
    #[serde(rename = "Id")]
    id: &'a str,
    #[serde(rename = "CreateTime")]
    create_time: String,
    #[serde(rename = "Status")]
    status: &'static str,
}

/// The `InvalidationList` document of `ListInvalidations`.
pub fn invalidation_list(page: &InvalidationPage, marker: &str, max_items: usize) -> String {
    let summaries: Vec<SummaryOut<'_>> = page
        .items
        .iter()
        .map(|r| SummaryOut {
            id: &r.id,
            create_time: format_time(r.create_time),
            status: r.status.as_str(),
        })
        .collect();
    to_document(
        "InvalidationList",
        &InvalidationListOut {
            xmlns: NAMESPACE,
            marker,
            next_marker: page.next_marker.as_deref(),
            max_items,
            is_truncated: page.is_truncated,
            quantity: summaries.len(),
            items: (!summaries.is_empty()).then_some(SummaryItems { summaries }),
        },
    )
}

#[derive(Serialize)]
struct ErrorResponseOut<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "Error")]
    error: ErrorOut<'a>,
    #[serde(rename = "RequestId")]
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "Type")]
    fault_type: &'static str,
    #[serde(rename = "Code")]
    code: &'static str,
    #[serde(rename = "Message")]
    message: &'a str,
}

/// The `ErrorResponse` document of every error.
pub fn error_response(error: &ApiError, request_id: &str) -> String {
    to_document(
        "ErrorResponse",
        &ErrorResponseOut {
            xmlns: NAMESPACE,
            error: ErrorOut {
                fault_type: error.fault_type(),
                code: error.code,
                message: &error.message,
            },
            request_id,
        },
    )
}

// ---- GetDistribution: a plain, deployed distribution with one S3 origin. ----

/// `<Quantity>0</Quantity>` lists.
#[derive(Serialize)]
struct Empty {
    #[serde(rename = "Quantity")]
    quantity: u32,
}

const EMPTY: Empty = Empty { quantity: 0 };

#[derive(Serialize)]
struct Signers {
    #[serde(rename = "Enabled")]
    enabled: bool,
    #[serde(rename = "Quantity")]
    quantity: u32,
}

const NO_SIGNERS: Signers = Signers {
    enabled: false,
    quantity: 0,
};

#[derive(Serialize)]
struct Methods {
    #[serde(rename = "Quantity")]
    quantity: u32,
    #[serde(rename = "Items")]
    items: MethodItems,
}

#[derive(Serialize)]
struct MethodItems {
    #[serde(rename = "Method")]
    method: [&'static str; 2],
}

#[derive(Serialize)]
struct AllowedMethods {
    #[serde(rename = "Quantity")]
    quantity: u32,
    #[serde(rename = "Items")]
    items: MethodItems,
    #[serde(rename = "CachedMethods")]
    cached_methods: Methods,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DefaultCacheBehavior {
    target_origin_id: String,
    trusted_signers: Signers,
    trusted_key_groups: Signers,
    viewer_protocol_policy: &'static str,
    allowed_methods: AllowedMethods,
    smooth_streaming: bool,
    compress: bool,
    lambda_function_associations: Empty,
    function_associations: Empty,
    field_level_encryption_id: &'static str,
    cache_policy_id: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct S3OriginConfig {
    origin_access_identity: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OriginShield {
    enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Origin {
    id: String,
    domain_name: String,
    origin_path: &'static str,
    custom_headers: Empty,
    s3_origin_config: S3OriginConfig,
    connection_attempts: u32,
    connection_timeout: u32,
    origin_shield: OriginShield,
    origin_access_control_id: &'static str,
}

#[derive(Serialize)]
struct Origins {
    #[serde(rename = "Quantity")]
    quantity: u32,
    #[serde(rename = "Items")]
    items: OriginItems,
}

#[derive(Serialize)]
struct OriginItems {
    #[serde(rename = "Origin")]
    origin: Vec<Origin>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Logging {
    enabled: bool,
    include_cookies: bool,
    bucket: &'static str,
    prefix: &'static str,
}

#[derive(Serialize)]
struct ViewerCertificate {
    #[serde(rename = "CloudFrontDefaultCertificate")]
    default_certificate: bool,
    #[serde(rename = "SSLSupportMethod")]
    ssl_support_method: &'static str,
    #[serde(rename = "MinimumProtocolVersion")]
    minimum_protocol_version: &'static str,
    #[serde(rename = "CertificateSource")]
    certificate_source: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GeoRestriction {
    restriction_type: &'static str,
    quantity: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Restrictions {
    geo_restriction: GeoRestriction,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CacheTagConfig {
    header_name: String,
}

#[derive(Serialize)]
struct DistributionConfig {
    /// Set when the config is the document's root (`GetDistributionConfig`).
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    xmlns: Option<&'static str>,
    #[serde(rename = "CallerReference")]
    caller_reference: String,
    #[serde(rename = "Aliases")]
    aliases: Empty,
    #[serde(rename = "DefaultRootObject")]
    default_root_object: &'static str,
    #[serde(rename = "Origins")]
    origins: Origins,
    #[serde(rename = "OriginGroups")]
    origin_groups: Empty,
    #[serde(rename = "DefaultCacheBehavior")]
    default_cache_behavior: DefaultCacheBehavior,
    #[serde(rename = "CacheBehaviors")]
    cache_behaviors: Empty,
    #[serde(rename = "CustomErrorResponses")]
    custom_error_responses: Empty,
    #[serde(rename = "Comment")]
    comment: String,
    #[serde(rename = "Logging")]
    logging: Logging,
    #[serde(rename = "PriceClass")]
    price_class: &'static str,
    #[serde(rename = "Enabled")]
    enabled: bool,
    #[serde(rename = "ViewerCertificate")]
    viewer_certificate: ViewerCertificate,
    #[serde(rename = "Restrictions")]
    restrictions: Restrictions,
    #[serde(rename = "WebACLId")]
    web_acl_id: &'static str,
    #[serde(rename = "HttpVersion")]
    http_version: &'static str,
    #[serde(rename = "IsIPV6Enabled")]
    is_ipv6_enabled: bool,
    #[serde(rename = "Staging")]
    staging: bool,
    /// Last, where the service model has it.
    #[serde(rename = "CacheTagConfig", skip_serializing_if = "Option::is_none")]
    cache_tag_config: Option<CacheTagConfig>,
}

#[derive(Serialize)]
struct DistributionOut {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "ARN")]
    arn: String,
    #[serde(rename = "Status")]
    status: &'static str,
    #[serde(rename = "LastModifiedTime")]
    last_modified_time: String,
    #[serde(rename = "InProgressInvalidationBatches")]
    in_progress_invalidation_batches: u64,
    #[serde(rename = "DomainName")]
    domain_name: String,
    #[serde(rename = "ActiveTrustedSigners")]
    active_trusted_signers: Signers,
    #[serde(rename = "ActiveTrustedKeyGroups")]
    active_trusted_key_groups: Signers,
    #[serde(rename = "DistributionConfig")]
    config: DistributionConfig,
}

/// The account id in the ARNs the simulator reports.
pub const ACCOUNT_ID: &str = "123456789012";

/// The `Distribution` document of `GetDistribution`.
pub fn distribution(info: &DistributionInfo) -> String {
    to_document(
        "Distribution",
        &DistributionOut {
            xmlns: NAMESPACE,
            id: info.id.clone(),
            arn: format!("arn:aws:cloudfront::{ACCOUNT_ID}:distribution/{}", info.id),
            status: "Deployed",
            last_modified_time: format_time(info.last_modified),
            in_progress_invalidation_batches: info.in_progress_invalidation_batches,
            domain_name: info.domain_name.clone(),
            active_trusted_signers: NO_SIGNERS,
            active_trusted_key_groups: NO_SIGNERS,
            config: config(info, None),
        },
    )
}

/// The `DistributionConfig` document of `GetDistributionConfig`: the same configuration
/// `GetDistribution` nests, as the root element.
pub fn distribution_config(info: &DistributionInfo) -> String {
    to_document("DistributionConfig", &config(info, Some(NAMESPACE)))
}

/// A plain, deployed distribution with one S3 origin (and the `CacheTagConfig`, if set).
fn config(info: &DistributionInfo, xmlns: Option<&'static str>) -> DistributionConfig {
    let origin_id = format!("simulated-origin-{}", info.id.to_ascii_lowercase());
    let get_head = MethodItems {
        method: ["HEAD", "GET"],
    };
    DistributionConfig {
        xmlns,
        caller_reference: format!("simulator-{}", info.id),
        aliases: EMPTY,
        default_root_object: "index.html",
        origins: Origins {
            quantity: 1,
            items: OriginItems {
                origin: vec![Origin {
                    id: origin_id.clone(),
                    domain_name: format!("{origin_id}.s3.us-east-1.amazonaws.com"),
                    origin_path: "",
                    custom_headers: EMPTY,
                    s3_origin_config: S3OriginConfig {
                        origin_access_identity: "",
                    },
                    connection_attempts: 3,
                    connection_timeout: 10,
                    origin_shield: OriginShield { enabled: false },
                    origin_access_control_id: "",
                }],
            },
        },
        origin_groups: EMPTY,
        default_cache_behavior: DefaultCacheBehavior {
            target_origin_id: origin_id,
            trusted_signers: NO_SIGNERS,
            trusted_key_groups: NO_SIGNERS,
            viewer_protocol_policy: "redirect-to-https",
            allowed_methods: AllowedMethods {
                quantity: 2,
                items: MethodItems {
                    method: ["HEAD", "GET"],
                },
                cached_methods: Methods {
                    quantity: 2,
                    items: get_head,
                },
            },
            smooth_streaming: false,
            compress: true,
            lambda_function_associations: EMPTY,
            function_associations: EMPTY,
            field_level_encryption_id: "",
            // The id of the AWS managed policy "CachingOptimized".
            cache_policy_id: "658327ea-f89d-4fab-a63d-7e88639e58f6",
        },
        cache_behaviors: EMPTY,
        custom_error_responses: EMPTY,
        comment: format!("Simulated distribution {}", info.id),
        logging: Logging {
            enabled: false,
            include_cookies: false,
            bucket: "",
            prefix: "",
        },
        price_class: "PriceClass_All",
        enabled: true,
        viewer_certificate: ViewerCertificate {
            default_certificate: true,
            ssl_support_method: "vip",
            minimum_protocol_version: "TLSv1",
            certificate_source: "cloudfront",
        },
        restrictions: Restrictions {
            geo_restriction: GeoRestriction {
                restriction_type: "none",
                quantity: 0,
            },
        },
        web_acl_id: "",
        http_version: "http2",
        is_ipv6_enabled: true,
        staging: false,
        cache_tag_config: info
            .cache_tag_header
            .clone()
            .map(|header_name| CacheTagConfig { header_name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InvalidationStatus;

    #[test]
    fn parses_a_batch_as_the_sdk_writes_it() {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><InvalidationBatch xmlns="{NAMESPACE}"><Paths><Quantity>2</Quantity><Items><Path>/a&amp;b</Path><Path>/c/*</Path></Items></Paths><CallerReference>ref-1</CallerReference></InvalidationBatch>"#
        );
        let raw = parse_invalidation_batch(body.as_bytes()).unwrap();
        assert_eq!(raw.quantity.as_deref(), Some("2"));
        assert_eq!(
            raw.items,
            Some(vec!["/a&b".to_string(), "/c/*".to_string()])
        );
        assert_eq!(raw.caller_reference.as_deref(), Some("ref-1"));
        assert!(raw.has_paths);
    }

    #[test]
    fn empty_and_odd_bodies() {
        assert_eq!(
            parse_invalidation_batch(b"").unwrap_err().code,
            "MissingBody"
        );
        assert_eq!(
            parse_invalidation_batch(b"  \n").unwrap_err().code,
            "MissingBody"
        );
        assert_eq!(
            parse_invalidation_batch(b"<Other/>").unwrap_err().code,
            "MalformedXML"
        );
        assert_eq!(
            parse_invalidation_batch(b"not xml <").unwrap_err().code,
            "MalformedXML"
        );
        let raw = parse_invalidation_batch(b"<InvalidationBatch><Paths><Quantity>0</Quantity></Paths><CallerReference>r</CallerReference></InvalidationBatch>").unwrap();
        assert_eq!((raw.items, raw.quantity.as_deref()), (None, Some("0")));
        let raw = parse_invalidation_batch(b"<InvalidationBatch><Paths><Quantity>1</Quantity><Items><Path></Path></Items></Paths><CallerReference>r</CallerReference></InvalidationBatch>").unwrap();
        assert_eq!(raw.items, Some(vec![String::new()]));
    }

    #[test]
    fn writes_documents() {
        let t = Timestamp::from_millisecond(1_575_570_291_407).unwrap();
        assert_eq!(format_time(t), "2019-12-05T18:24:51.407Z");
        let rec = InvalidationRecord {
            id: "I1JLWSDAP8FU89".into(),
            distribution_id: "E1".into(),
            distribution_tenant_id: None,
            caller_reference: "r<1>".into(),
            paths: vec!["/a".into(), "/b*".into()],
            create_time: t,
            completion_time: t,
            first_reported_completed: None,
            status: InvalidationStatus::InProgress,
        };
        let xml = invalidation(&rec);
        assert!(xml.starts_with("<?xml"), "{xml}");
        for part in [
            "<Invalidation xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">",
            "<Id>I1JLWSDAP8FU89</Id>",
            "<Status>InProgress</Status>",
            "<CreateTime>2019-12-05T18:24:51.407Z</CreateTime>",
            "<Paths><Quantity>2</Quantity><Items><Path>/a</Path><Path>/b*</Path></Items></Paths>",
            "<CallerReference>r&lt;1&gt;</CallerReference>",
        ] {
            assert!(xml.contains(part), "{part} missing in {xml}");
        }
        let err = error_response(&ApiError::no_such_distribution(), "req-1");
        assert!(
            err.contains("<Error><Type>Sender</Type><Code>NoSuchDistribution</Code>"),
            "{err}"
        );
        assert!(err.contains("<RequestId>req-1</RequestId>"));
        let page = InvalidationPage {
            items: vec![],
            is_truncated: false,
            next_marker: None,
        };
        let list = invalidation_list(&page, "", 100);
        assert!(
            list.contains("<IsTruncated>false</IsTruncated>")
                && list.contains("<Quantity>0</Quantity>"),
            "{list}"
        );
        assert!(!list.contains("<Items"), "{list}");
    }
}
