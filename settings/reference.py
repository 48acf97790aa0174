"""Every configuration key, documented once.

Pulumi.yaml's schema and docs/configuration.md's table are checked against
`CONFIG_REFERENCE` by the tests; unknown keys are rejected against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from constants.config import DEFAULT_SSL_POLICY
from constants.images import ENVOY_IMAGE


@dataclass(frozen=True)
class ConfigKey:
    """One documented configuration key (dotted path inside the namespace)."""

    path: str
    type: str  # string | integer | boolean | array | object
    default: str  # human-readable default, "" when required or absent by default
    description: str
    # Declared in Pulumi.yaml too. The CLI makes a declared key without default required in
    # every stack and merges a declared default into every stack, so only keys every stack
    # sets and keys whose default suits every topology qualify (tests/unit/test_docs.py).
    project_schema: bool = False


CONFIG_REFERENCE: tuple[ConfigKey, ...] = (
    ConfigKey(
        "topology",
        "string",
        "",
        "Required. One of: nlb-certbot, alb-envoy, service-connect, appmesh-efs, direct-task.",
        project_schema=True,
    ),
    ConfigKey(
        "domain",
        "string",
        "",
        "Required. DNS name clients use; for direct-task the parent of the per-task names.",
        project_schema=True,
    ),
    ConfigKey(
        "hostedZoneId",
        "string",
        "unset",
        "Route53 zone holding `domain`; when set the program creates the DNS records. "
        "Required by DNS-01 and direct-task.",
    ),
    ConfigKey(
        "ingress",
        "string",
        "alb",
        "How clients reach the public service: alb, nlb or none.",
    ),
    ConfigKey(
        "logRetentionDays",
        "integer",
        "30",
        "Retention of the cluster's CloudWatch log group, one of the values CloudWatch accepts.",
        project_schema=True,
    ),
    ConfigKey(
        "allowedCidrs",
        "array",
        "[0.0.0.0/0]; nlb-certbot: required",
        "IPv4 CIDRs allowed to reach the public load balancer (direct-task: the tasks). "
        "Required by nlb-certbot, whose NLB passes TCP straight to the database: "
        '["0.0.0.0/0"] opens it to everyone. At most 60 inbound rules per security group: '
        "30 CIDRs behind an ALB, 60 / number of app.ports for nlb-certbot.",
    ),
    ConfigKey(
        "sslPolicy",
        "string",
        DEFAULT_SSL_POLICY,
        "TLS policy of HTTPS listeners; a TLS13 policy, which also makes the ALB speak "
        "TLS 1.3 to its targets. Policies that accept TLS 1.0 or 1.1 are refused.",
    ),
    ConfigKey(
        "certificateExpiryAlarmDays",
        "integer",
        "30",
        "Days before the load balancer's certificate expires when the alerts topic is told "
        "(1 to 45).",
    ),
    ConfigKey(
        "alertsEmail",
        "string",
        "unset",
        "E-mail address subscribed to the alerts topic (certificate expiry, renewal or issue "
        "failed, undelivered scheduled runs, fewer healthy tasks than desired); SNS mails a "
        "confirmation link first.",
    ),
    ConfigKey(
        "caaRecord",
        "boolean",
        "true",
        "With hostedZoneId: a CAA record for domain that lets only the stack's CAs issue "
        "(Let's Encrypt, and Amazon's where ACM issues). false where CAA records for the "
        "name are managed elsewhere (Route53 refuses a second record set).",
    ),
    ConfigKey(
        "loadBalancer",
        "object",
        "see below",
        "Extras of the load balancer clients reach (none for direct-task; service-connect "
        "with ingress alb or nlb); each off unless set.",
    ),
    ConfigKey(
        "loadBalancer.accessLogs",
        "boolean",
        "false",
        "true: access logs to an S3 bucket the stack creates (SSE-S3, the only encryption "
        "ALB logs take; public access blocked; kept by destroy: docs/destroy.md). Or an "
        "object {bucket, prefix, expirationDays}: bucket names an existing bucket whose "
        "policy admits ELB log delivery. alb-envoy and service-connect only: the NLBs of "
        "nlb-certbot and appmesh-efs pass TCP, and NLBs log TLS listeners only.",
    ),
    ConfigKey(
        "loadBalancer.accessLogs.bucket",
        "string",
        "created",
        "An existing S3 bucket (SSE-S3) for the logs, its policy yours to set.",
    ),
    ConfigKey(
        "loadBalancer.accessLogs.prefix",
        "string",
        "none",
        "Key prefix of the log objects, before AWSLogs/<account>/ (no AWSLogs in it).",
    ),
    ConfigKey(
        "loadBalancer.accessLogs.expirationDays",
        "integer",
        "90",
        "Created bucket only: log objects are deleted after this many days (1 to 3650).",
    ),
    ConfigKey(
        "loadBalancer.deletionProtection",
        "boolean",
        "false",
        "AWS refuses to delete the load balancer while true: `pulumi destroy` and a topology "
        "switch fail until it is set back to false and applied (docs/destroy.md).",
    ),
    ConfigKey(
        "loadBalancer.wafWebAclArn",
        "string",
        "unset",
        "ARN of a regional WAFv2 web ACL to associate with the ALB (alb-envoy, "
        "service-connect with ingress alb).",
    ),
    ConfigKey("envoy", "object", "see below", "The TLS-terminating sidecar."),
    ConfigKey("envoy.image", "string", ENVOY_IMAGE, "Stock Envoy image (v3 API, >= 1.21)."),
    ConfigKey("envoy.port", "integer", "8443", "Port of Envoy's TLS listener in the task."),
    ConfigKey(
        "envoy.minTlsVersion",
        "string",
        "1.2",
        "Lowest TLS version Envoy accepts from the load balancer: 1.2 or 1.3.",
    ),
    ConfigKey(
        "envoy.accessLog",
        "string",
        "all",
        "Envoy's JSON access log on stdout: all (every request), sampled (10 %) or off.",
    ),
    ConfigKey(
        "envoy.upstreamIdleTimeoutSeconds",
        "integer",
        "50",
        "Envoy closes idle connections to the app after this; keep it below the app's "
        "keep-alive timeout (nginx: 75 s) or requests racing the app's close fail with 503.",
    ),
    ConfigKey(
        "images",
        "object",
        "see below",
        "Where tasks pull the program's own images (every one pinned by digest; "
        "constants/images.py). Images you set (app.image, services[].image, envoy.image) are "
        "pulled as given; the execution role may pull from ECR only the ECR repositories "
        "they name.",
    ),
    ConfigKey(
        "images.pullThroughCache",
        "boolean",
        "false",
        "true: ECR pull-through cache rules in this account and region mirror ECR Public "
        "(and Docker Hub with images.dockerHubCredentialsArn), and tasks pull the program's "
        "images from them. ECR fills the cache on a first pull by tag only, not by digest "
        "(aws/containers-roadmap#2837): run the commands of the output imageCacheWarmup once "
        "(after aws ecr get-login-password | docker login) before tasks start.",
    ),
    ConfigKey(
        "images.dockerHubCredentialsArn",
        "string",
        "unset",
        "ARN of a Secrets Manager secret named ecr-pullthroughcache/... holding a Docker Hub "
        "username and accessToken; ECR caches Docker Hub only with it. Unset: Docker Hub "
        "images (Envoy, certbot) are pulled from Docker Hub.",
    ),
    ConfigKey(
        "images.repositoryPrefix",
        "string",
        "ecs-tls",
        "Path the cache rules put their repositories under (<prefix>/ecr-public, "
        "<prefix>/docker-hub); rules are per account and region, so two stacks there "
        "need two prefixes.",
    ),
    ConfigKey("acme", "object", "see below", "Let's Encrypt (ACME) settings."),
    ConfigKey(
        "acme.email",
        "string",
        "unset",
        "ACME account e-mail; required by nlb-certbot and direct-task.",
    ),
    ConfigKey("acme.challenge", "string", "dns-01", "ACME challenge: dns-01 or http-01."),
    ConfigKey(
        "acme.server",
        "string",
        "staging",
        "ACME directory: staging, production, or an https:// directory URL.",
    ),
    ConfigKey(
        "acme.profile",
        "string",
        "unset",
        "ACME profile to ask for: classic, tlsserver (45 days) or shortlived (~6 days).",
    ),
    ConfigKey(
        "acme.renewEveryDays",
        "integer",
        "from the lifetime",
        "nlb-certbot: days between runs of the renewal task (1 to 30); a run that issues a "
        "certificate restarts the app once. Default: a sixth of the certificate lifetime, 7 "
        "days for 45-day certificates. direct-task runs its renewal every hour instead "
        "(certbot asks the CA only when renewal is due) and replaces no task.",
    ),
    ConfigKey(
        "network",
        "object",
        "new VPC",
        "Absent: create a VPC. Set vpcId and subnet IDs to use an existing one instead.",
    ),
    ConfigKey(
        "network.cidrBlock",
        "string",
        "10.0.0.0/16",
        "CIDR of a new VPC (/16 to /25). Cut into 16 equal slots, none below /27: zone i "
        "takes slot i of the first half (public) and of the second (private); a /16 gives "
        "/20 subnets. Zones that fit: 6 up to /23, 4 in a /24, 2 in a /25. Changing it "
        "replaces the VPC and everything in it.",
    ),
    ConfigKey(
        "network.availabilityZones",
        "integer",
        "2",
        "Number of availability zones of a new VPC (2 to 6, at most the region's). Adding "
        "zones adds subnets and replaces none; fewer zones than the VPC has are refused.",
    ),
    ConfigKey(
        "network.natGateways",
        "integer",
        "1",
        "NAT gateways of a new VPC: 1, or one per availability zone; 0 only where no task "
        "runs in the private subnets. direct-task needs none: set 0 (its example stack does).",
    ),
    ConfigKey("network.vpcId", "string", "unset", "ID of an existing VPC to use."),
    ConfigKey(
        "network.publicSubnetIds",
        "array",
        "unset",
        "Existing public subnet IDs (load balancers); required with vpcId.",
    ),
    ConfigKey(
        "network.privateSubnetIds",
        "array",
        "unset",
        "Existing private subnet IDs (tasks); required with vpcId.",
    ),
    ConfigKey(
        "certificate",
        "object",
        "generated",
        "Bring your own certificate. Absent: a private chain is generated with pulumi-tls.",
    ),
    ConfigKey(
        "certificate.source",
        "string",
        "per topology",
        "What the public load balancer presents: `acm`, a publicly trusted certificate ACM "
        "issues and renews, validated by a DNS record in hostedZoneId (the default of "
        "service-connect with hostedZoneId); `generated`, a private chain imported into ACM "
        "(clients need caCertificatePem; the default otherwise). alb-envoy: Envoy in the task "
        "keeps its own generated chain either way, as the ALB does not verify targets.",
    ),
    ConfigKey(
        "certificate.arn",
        "string",
        "unset",
        "An ACM certificate of the stack's account and region for the public load balancer, "
        "instead of source or PEMs; you renew it (imported) or ACM does (issued).",
    ),
    ConfigKey("certificate.certificatePem", "string", "", "PEM of the leaf certificate."),
    ConfigKey(
        "certificate.privateKeyPem",
        "string",
        "",
        "PEM of the leaf's private key; set it with --secret.",
    ),
    ConfigKey("certificate.chainPem", "string", "unset", "PEM of the intermediate chain."),
    ConfigKey(
        "privateCa",
        "object",
        "created",
        "AWS Private CA for service-connect. Absent: a short-lived CA is created.",
    ),
    ConfigKey("privateCa.arn", "string", "unset", "ARN of an existing (e.g. RAM-shared) CA."),
    ConfigKey(
        "privateCa.shareWith",
        "array",
        "[]",
        "Account IDs, OU ARNs or an organization ARN to share the created CA with via RAM.",
    ),
    ConfigKey(
        "privateCa.keyAlgorithm",
        "string",
        "EC_prime256v1",
        "Key of a created CA: EC_prime256v1, EC_secp384r1 or RSA_2048.",
    ),
    ConfigKey(
        "privateCa.signingAlgorithm",
        "string",
        "SHA256WITHECDSA",
        "Signing algorithm of a created CA, matching its key (e.g. SHA512WITHECDSA for P-384).",
    ),
    ConfigKey(
        "privateCa.permanentDeletionDays",
        "integer",
        "7",
        "Days a deleted CA stays restorable (7 to 30).",
    ),
    ConfigKey(
        "privateCa.allowExternalPrincipals",
        "boolean",
        "false",
        "Let the RAM share reach accounts outside your AWS Organization.",
    ),
    ConfigKey(
        "serviceConnect",
        "object",
        "see below",
        "The cluster's Service Connect namespace and service-connect's TLS options.",
    ),
    ConfigKey(
        "serviceConnect.namespace",
        "string",
        "<project>-<stack>",
        "Name of the Cloud Map HTTP namespace, the cluster's Service Connect default.",
    ),
    ConfigKey(
        "serviceConnect.customerKmsKey",
        "boolean",
        "false",
        "Encrypt the keys ECS stores for Service Connect TLS with a customer managed KMS key.",
    ),
    ConfigKey(
        "mesh",
        "object",
        "see below",
        "appmesh-efs: the Envoy gateway, the services' Envoy sidecars and their discovery.",
    ),
    ConfigKey(
        "mesh.namespace",
        "string",
        "mesh.<domain>",
        "Cloud Map private DNS namespace; service <name> is <discoveryName>.<namespace>, a "
        "name its certificate carries.",
    ),
    ConfigKey(
        "mesh.mutualTls",
        "boolean",
        "true",
        "Services accept only clients (the gateway, other services) with a certificate from "
        "the mesh's CA. With your own certificate: set mesh.clientCertificate or false.",
    ),
    ConfigKey(
        "mesh.clientCertificate",
        "object",
        "unset",
        "With your own certificate and mutual TLS: the client certificate the gateway and "
        "services present, issued under certificate.chainPem's root.",
    ),
    ConfigKey(
        "mesh.clientCertificate.certificatePem", "string", "", "PEM of the client certificate."
    ),
    ConfigKey(
        "mesh.clientCertificate.privateKeyPem",
        "string",
        "",
        "PEM of its private key; set it with --secret.",
    ),
    ConfigKey(
        "mesh.gatewayRoutes",
        "array",
        "[{prefix: /, service: <first>}]",
        "The gateway's routes, longest prefix first: each {prefix (e.g. /api/), service (a "
        "service name), prefixRewrite (optional, e.g. /: replaces the matched prefix)}.",
    ),
    ConfigKey("mesh.gatewayDesiredCount", "integer", "2", "Number of gateway Envoy tasks."),
    ConfigKey(
        "mesh.dnsRefreshSeconds",
        "integer",
        "5",
        "How often the gateway's Envoy re-resolves the services' Cloud Map names (1 to 60).",
    ),
    ConfigKey(
        "mesh.additionalTrustedCaPem",
        "string",
        "unset",
        "Root CA certificates (PEM) every Envoy trusts besides the mesh's own, for a CA "
        "rotation without outage: docs/topologies/appmesh-efs.md gives the steps.",
    ),
    ConfigKey("app", "object", "per topology", "The workload; each field overrides a default."),
    ConfigKey("app.image", "string", "per topology", "Container image of the app."),
    ConfigKey("app.port", "integer", "per topology", "Port the app listens on."),
    ConfigKey("app.cpu", "integer", "256", "Fargate task CPU units."),
    ConfigKey(
        "app.memory",
        "integer",
        "512",
        "Fargate task memory (MiB), valid for app.cpu. nlb-certbot with Neo4j: at least "
        "2048; Neo4j's heap gets 40 % of it, its page cache 35 %, the rest is left to the "
        "JVM's other memory.",
    ),
    ConfigKey(
        "app.desiredCount",
        "integer",
        "2",
        "Number of tasks; nlb-certbot: 0 or 1 (1; 0 with http-01 until DNS points at the NLB).",
    ),
    ConfigKey("app.healthCheckPath", "string", "per topology", "HTTP path used by health checks."),
    ConfigKey(
        "app.environment",
        "object",
        "{}",
        "Plain environment variables, stored in plaintext in the task definition: names "
        "that say secret (PASSWORD, TOKEN, API_KEY...) and values that look like keys are "
        "refused; keep those in Secrets Manager.",
    ),
    ConfigKey(
        "app.enableExecuteCommand",
        "boolean",
        "false",
        "ECS Exec into the app's tasks (`aws ecs execute-command`, output execCommand): the "
        "task role gets the ssmmessages rights, the cluster encrypts sessions with its own "
        "KMS key and logs them to an encrypted log group. Running tasks get it at their "
        "next start. nlb-certbot on EC2: the ECS-optimized AMI's agent carries what it needs.",
    ),
    ConfigKey(
        "app.ports",
        "array",
        "[7473, 7687]",
        "TLS ports the app serves and the NLB passes through (TCP).",
    ),
    ConfigKey(
        "app.certificateLayout",
        "object",
        "Neo4j",
        "Where the copier writes the certificate for the app: directory (/ssl), "
        "scopes ([bolt, https]), certificateFile (public.crt), privateKeyFile (private.key), "
        "owner (7474:7474).",
    ),
    ConfigKey(
        "app.capacity",
        "string or object",
        "nlb-certbot: ec2; else fargate",
        "nlb-certbot: ec2 (one instance; app.dataPath on an EBS volume that survives tasks "
        "and instances) or fargate (stateless TLS apps: nothing persists); never Fargate Spot, "
        "which may stop the one database at two minutes' notice. alb-envoy, direct-task: "
        "fargate (the FARGATE launch type), fargate-spot, or weights {fargate: N, "
        "fargateSpot: M, base: B} (B tasks on on-demand Fargate first, the rest split N:M): "
        "a capacity provider strategy on the cluster's FARGATE and FARGATE_SPOT. Moving from "
        "fargate to Spot or weights updates the service in place with a rolling deployment "
        "(no replacement); from Spot or weights back to fargate the AWS provider refuses the "
        "change, so use weights {fargate: 1} instead (docs/day-2.md).",
    ),
    ConfigKey(
        "app.autoscaling",
        "object",
        "unset",
        "Target tracking with Application Auto Scaling on the service's task count: min, max "
        "and at least one of cpuPercent, memoryPercent, requestsPerTarget (alb-envoy only: "
        "ALB requests per task). app.desiredCount must lie from min to max; the scaler then "
        "owns the count, and `pulumi up` no longer changes it. Scale-in stays on; a scale-out "
        "waits 60 s after the last, a scale-in 300 s (docs/day-2.md).",
    ),
    ConfigKey(
        "app.autoscaling.min", "integer", "", "Fewest tasks (0 to 100); alarms count from it."
    ),
    ConfigKey("app.autoscaling.max", "integer", "", "Most tasks (1 to 100, at least min)."),
    ConfigKey(
        "app.autoscaling.cpuPercent",
        "integer",
        "unset",
        "Average CPU utilisation of the service to hold (1 to 100).",
    ),
    ConfigKey(
        "app.autoscaling.memoryPercent",
        "integer",
        "unset",
        "Average memory utilisation of the service to hold (1 to 100).",
    ),
    ConfigKey(
        "app.autoscaling.requestsPerTarget",
        "integer",
        "unset",
        "Requests per task per minute counted by the ALB target group to hold; only where an "
        "ALB fronts the service.",
    ),
    ConfigKey("app.instanceType", "string", "t3.large", "With capacity ec2: the instance type."),
    ConfigKey(
        "app.dataPath",
        "string",
        "/data",
        "With capacity ec2: the container path kept on the data volume (Neo4j's store).",
    ),
    ConfigKey(
        "app.dataVolumeGiB",
        "integer",
        "20",
        "With capacity ec2: size of the encrypted gp3 data volume; it can grow, not shrink. "
        "Raising it modifies the volume in place (no replacement, at most one change every "
        "6 hours); the next instance grows the file system at boot, and on the running "
        "instance `sudo /usr/local/sbin/ecs-tls-data-volume` (from Session Manager, once "
        "the volume modification is optimizing) grows it online with resize2fs.",
    ),
    ConfigKey(
        "app.snapshotRetentionDays",
        "integer",
        "7",
        "With capacity ec2: daily snapshots of the data volume kept (0: no snapshots).",
    ),
    ConfigKey(
        "app.dataVolumeSnapshotId",
        "string",
        "",
        "With capacity ec2: create the data volume from this EBS snapshot (snap- and 8 or 17 "
        "hex digits), to restore. Runbook: set it to one of the daily snapshots, check that "
        "app.dataVolumeGiB is at least the snapshot's size, `pulumi preview` (a new volume "
        "is created from the snapshot in app.dataVolumeZone, by default the zone of the "
        "first private subnet, with app.dataVolumeKmsKeyArn; the old one is kept, not "
        "deleted: retained), then `pulumi up`, and the instance attaches the new volume at "
        "its next boot (terminate it). Leave the key set afterwards: removing it creates a "
        "blank volume. Other changes never replace the volume: the output dataVolumeZone "
        "shows its zone, which the instance follows.",
    ),
    ConfigKey(
        "app.dataVolumeZone",
        "string",
        "",
        "With capacity ec2: the availability zone (e.g. eu-west-1a) of a new data volume; "
        "empty: the zone of the first private subnet. An existing volume never moves: a "
        "value other than its zone stops `pulumi up` with the steps to move it (snapshot, "
        "app.dataVolumeSnapshotId, this key). A private subnet must exist in the zone.",
    ),
    ConfigKey(
        "app.dataVolumeKmsKeyArn",
        "string",
        "",
        "With capacity ec2: a customer managed KMS key ARN that encrypts the data volume and "
        "the instance's root volume; empty: the account's default EBS key. The instance "
        "role gets kms:CreateGrant on it; the key's policy must let the Auto Scaling "
        "service-linked role use it (docs/topologies/nlb-certbot.md). Set on an existing "
        "volume, it stops `pulumi up` with the steps to re-encrypt.",
    ),
    ConfigKey(
        "app.secrets",
        "object",
        "{}",
        "Environment variables ECS fills from secrets at task start, on the app container "
        "only: NAME: ARN of a Secrets Manager secret or an SSM parameter, or NAME: {arn, "
        "jsonKey, versionStage or versionId} for one JSON key or version of a secret. The "
        "shared execution role may read exactly these (a partial secret ARN without its "
        "6-character suffix is granted as <arn>-??????). Values are never read by the "
        "program; a running task keeps the value it started with.",
    ),
    ConfigKey(
        "app.secretsKmsKeyArn",
        "string",
        "unset",
        "The customer managed KMS key that encrypts app.secrets: the execution role may "
        "decrypt with it through Secrets Manager and SSM only. Unset: AWS managed keys.",
    ),
    ConfigKey(
        "app.taskRolePolicyArns",
        "array",
        "[]",
        "IAM managed policy ARNs attached to the app's task role (the program's role, which "
        "keeps the topology's own rights); at most 20.",
    ),
    ConfigKey(
        "app.taskRoleArn",
        "string",
        "unset",
        "An existing IAM role used as the app's task role instead of the program's; "
        "excludes app.taskRolePolicyArns. alb-envoy only: in nlb-certbot (EFS mount) and "
        "direct-task (the certificate refresher) the task role also carries the topology's "
        "own rights. The deployer needs iam:PassRole on it.",
    ),
    ConfigKey(
        "services",
        "array",
        "demo",
        "The services; absent: a frontend that calls a backend.",
    ),
    ConfigKey("services[].name", "string", "", "Required. Lowercase DNS label, unique."),
    ConfigKey("services[].image", "string", "", "Required. Container image."),
    ConfigKey("services[].port", "integer", "", "Required. Port the container listens on."),
    ConfigKey(
        "services[].mode",
        "string",
        "server",
        "server (reachable, TLS by Service Connect) or client (calls others only, e.g. TCP).",
    ),
    ConfigKey(
        "services[].public",
        "boolean",
        "frontend",
        "The one server the ingress sends clients to (default: frontend, else the first).",
    ),
    ConfigKey(
        "services[].appProtocol",
        "string",
        "http",
        "http, http2 or grpc; fixed once the service exists.",
    ),
    ConfigKey("services[].discoveryName", "string", "name", "Cloud Map name of the service."),
    ConfigKey(
        "services[].clientAlias",
        "object",
        "{dnsName: name, port: port}",
        "Name and port clients use; when given, port is required.",
    ),
    ConfigKey(
        "services[].calls",
        "array",
        "see text",
        "Names of the servers this service calls; ECS creates them first, because a task "
        "resolves Service Connect names once, at start. Default: the public service and "
        "clients call every other server; other servers call none.",
    ),
    ConfigKey(
        "services[].healthCheckPath",
        "string",
        "/",
        "HTTP path the load balancer checks; the demo answers /healthz itself.",
    ),
    ConfigKey("services[].command", "array", "image default", "Container command."),
    ConfigKey(
        "services[].environment",
        "object",
        "{}",
        "Plain environment variables; no secrets, as app.environment.",
    ),
    ConfigKey("services[].cpu", "integer", "256", "Fargate task CPU units."),
    ConfigKey("services[].memory", "integer", "512", "Fargate task memory (MiB)."),
    ConfigKey(
        "services[].secrets",
        "object",
        "{}",
        "As app.secrets, for this service's container.",
    ),
    ConfigKey(
        "services[].secretsKmsKeyArn",
        "string",
        "unset",
        "As app.secretsKmsKeyArn, for this service's secrets.",
    ),
    ConfigKey(
        "services[].taskRolePolicyArns",
        "array",
        "[]",
        "As app.taskRolePolicyArns, attached to this service's task role.",
    ),
    ConfigKey(
        "services[].taskRoleArn",
        "string",
        "unset",
        "As app.taskRoleArn, for this service; service-connect only (appmesh-efs: Envoy "
        "mounts its certificates with the task role).",
    ),
    ConfigKey(
        "services[].desiredCount",
        "integer",
        "2",
        "Number of tasks; at most 8 in appmesh-efs, where Cloud Map answers with at most "
        "8 addresses.",
    ),
    ConfigKey(
        "services[].capacity",
        "string or object",
        "fargate",
        "fargate, fargate-spot or weights {fargate, fargateSpot, base}, as app.capacity.",
    ),
    ConfigKey(
        "services[].autoscaling",
        "object",
        "unset",
        "As app.autoscaling: {min, max, cpuPercent, memoryPercent, requestsPerTarget}; "
        "requestsPerTarget only on the public service of service-connect with ingress alb; "
        "max at most 8 in appmesh-efs.",
    ),
    ConfigKey(
        "services[].enableExecuteCommand",
        "boolean",
        "false",
        "ECS Exec into this service's tasks, as app.enableExecuteCommand.",
    ),
)

KNOWN_TOP_LEVEL = tuple(k.path for k in CONFIG_REFERENCE if "." not in k.path)

SERVICE_KEYS = tuple(
    k.path.split(".", 1)[1] for k in CONFIG_REFERENCE if k.path.startswith("services[].")
)

# Which topologies read a key. A key set on a topology that does not read it is refused,
# as a silently ignored key hides a mistake (a certificate the user believes the NLB
# serves, a CA that is never created). Keys not listed apply to every topology; that
# includes `serviceConnect.namespace` (the cluster's namespace, part of the foundation)
# and every key Pulumi.yaml declares with a default, which the CLI merges into every stack.
APPLIES_TO: dict[str, tuple[str, ...]] = {
    # direct-task runs its renewal hourly (certbot asks the CA only when due). Before
    # `acme`, so that key is named when both are refused.
    "acme.renewEveryDays": ("nlb-certbot",),
    "acme": ("nlb-certbot", "direct-task"),
    "privateCa": ("service-connect",),
    "serviceConnect.customerKmsKey": ("service-connect",),
    "ingress": ("service-connect",),
    "services": ("service-connect", "appmesh-efs"),
    "envoy": ("alb-envoy", "appmesh-efs", "direct-task"),
    # Before `certificate`: ACM never hands out its keys, and appmesh-efs's gateway Envoy
    # needs the key, as its NLB passes TLS through.
    "certificate.source": ("alb-envoy", "service-connect"),
    "certificate.arn": ("alb-envoy", "service-connect"),
    "certificate": ("alb-envoy", "service-connect", "appmesh-efs"),
    "sslPolicy": ("alb-envoy", "service-connect"),
    "certificateExpiryAlarmDays": ("alb-envoy", "service-connect", "appmesh-efs"),
    "mesh": ("appmesh-efs",),
    "app.ports": ("nlb-certbot",),
    "app.certificateLayout": ("nlb-certbot",),
    "app.capacity": ("nlb-certbot", "alb-envoy", "direct-task"),
    "app.autoscaling": ("alb-envoy", "direct-task"),
    "app.instanceType": ("nlb-certbot",),
    "app.dataPath": ("nlb-certbot",),
    "app.dataVolumeGiB": ("nlb-certbot",),
    "app.snapshotRetentionDays": ("nlb-certbot",),
    "app.dataVolumeSnapshotId": ("nlb-certbot",),
    "app.dataVolumeZone": ("nlb-certbot",),
    "app.dataVolumeKmsKeyArn": ("nlb-certbot",),
    # Where `app` is the workload; service-connect and appmesh-efs take them per service.
    "app.secrets": ("alb-envoy", "direct-task", "nlb-certbot"),
    "app.secretsKmsKeyArn": ("alb-envoy", "direct-task", "nlb-certbot"),
    "app.taskRolePolicyArns": ("alb-envoy", "direct-task", "nlb-certbot"),
    # nlb-certbot's and direct-task's task role carries their sidecar's rights too.
    "app.taskRoleArn": ("alb-envoy",),
    "app.enableExecuteCommand": ("nlb-certbot", "alb-envoy", "direct-task"),
    # Before `loadBalancer`, so these keys are named when both are refused.
    "loadBalancer.accessLogs": ("alb-envoy", "service-connect"),
    "loadBalancer.wafWebAclArn": ("alb-envoy", "service-connect"),
    "loadBalancer": ("nlb-certbot", "alb-envoy", "service-connect", "appmesh-efs"),
    # After the fields above, so a field only nlb-certbot reads is named on alb-envoy too.
    "app": ("nlb-certbot", "alb-envoy", "direct-task"),
}

# Why a key is refused on a topology, where "applies to" alone leaves the user guessing.
REFUSED_BECAUSE: dict[tuple[str, str], str] = {
    ("app.autoscaling", "nlb-certbot"): (
        ": it runs one database instance, which a second task would not join"
    ),
}

# What to set instead, appended to the refusal of a key where a topology reads another.
APPLIES_TO_HINTS: dict[str, str] = {
    "app": "its workloads are services[] (image, port, cpu, memory, desiredCount and "
    "environment per service): set them there",
}

# Keys about the public load balancer's listener, which service-connect only has with
# `ingress` alb or nlb.
LOAD_BALANCER_KEYS = (
    "certificate",
    "sslPolicy",
    "certificateExpiryAlarmDays",
    "allowedCidrs",
    "loadBalancer",
)
