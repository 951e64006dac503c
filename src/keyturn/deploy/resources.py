"""Which resource an IAM action is authorized against, and the ARN each kind has.

IAM only scopes an action to the resource types the AWS Service Authorization Reference
lists for it; an action with none (`iam:ListUsers`, `ses:GetSendQuota`) needs
`Resource: "*"`. `RESOURCE_KIND` is that reference, reduced to the actions keyturn uses; a
test checks it against the copy of the reference that `parliament` ships, so a wrong entry
(a `RESOURCE_MISMATCH` at deploy time) fails in `make test` instead.

ARNs are CloudFormation `Fn::Sub` strings: `${AWS::AccountId}` and friends, and the
template's parameters (`${UserPath}`, `${SecretPrefix}`, ...). `keyturn policy` fills the
same placeholders from flags and settings, so both print the same document.
"""

from __future__ import annotations

# action -> resource kind; "" means the action takes no resource (Resource "*").
RESOURCE_KIND: dict[str, str] = {
    # IAM: credential report and listing are account-wide
    "iam:GenerateCredentialReport": "",
    "iam:GetCredentialReport": "",
    "iam:ListUsers": "",
    "iam:GetAccountAuthorizationDetails": "",
    # IAM: per user
    "iam:ListAccessKeys": "user",
    "iam:GetAccessKeyLastUsed": "user",
    "iam:GetUser": "user",
    "iam:ListUserTags": "user",
    "iam:UpdateAccessKey": "user",
    "iam:DeleteAccessKey": "user",
    "iam:CreateAccessKey": "user",
    "iam:TagUser": "user",
    "iam:UntagUser": "user",
    "iam:CreateUser": "user",
    "iam:DeleteUser": "user",
    "iam:AttachUserPolicy": "user",
    "iam:DetachUserPolicy": "user",
    "iam:PutUserPolicy": "user",
    "iam:DeleteUserPolicy": "user",
    "iam:ListAttachedUserPolicies": "user",
    "iam:ListUserPolicies": "user",
    "iam:ListGroupsForUser": "user",
    "iam:DeleteLoginProfile": "user",
    "iam:ListMFADevices": "user",
    "iam:DeactivateMFADevice": "user",
    "iam:ListSSHPublicKeys": "user",
    "iam:DeleteSSHPublicKey": "user",
    "iam:ListSigningCertificates": "user",
    "iam:DeleteSigningCertificate": "user",
    "iam:ListServiceSpecificCredentials": "user",
    "iam:DeleteServiceSpecificCredential": "user",
    # IAM: groups and MFA devices
    "iam:GetGroup": "group",
    "iam:AddUserToGroup": "group",
    "iam:RemoveUserFromGroup": "group",
    "iam:DeleteVirtualMFADevice": "mfa",
    # SES (v1): only sending is scoped, to the sending identity
    "ses:SendEmail": "identity",
    "ses:GetIdentityVerificationAttributes": "",
    "ses:VerifyEmailIdentity": "",
    "ses:GetSendQuota": "",
    # STS
    "sts:AssumeRole": "role",
    "sts:GetFederationToken": "",
    "sts:GetCallerIdentity": "",
    # Organizations
    "organizations:ListAccounts": "",
    # DynamoDB (the lease table)
    "dynamodb:PutItem": "table",
    "dynamodb:GetItem": "table",
    "dynamodb:Query": "table",
    "dynamodb:DeleteItem": "table",
    "dynamodb:DescribeTable": "table",
    "dynamodb:CreateTable": "table",
    # SQS (the account queue and the dead-letter queue)
    "sqs:SendMessage": "queue",
    "sqs:ReceiveMessage": "queue",
    "sqs:DeleteMessage": "queue",
    "sqs:GetQueueAttributes": "queue",
    "sqs:ChangeMessageVisibility": "queue",
    # Secrets Manager (rotation)
    "secretsmanager:DescribeSecret": "secret",
    "secretsmanager:GetSecretValue": "secret",
    "secretsmanager:PutSecretValue": "secret",
    "secretsmanager:CreateSecret": "secret",
    "secretsmanager:UpdateSecretVersionStage": "secret",
    "secretsmanager:TagResource": "secret",
    "secretsmanager:GetRandomPassword": "",
    "kms:GenerateDataKey": "key",
    "kms:Decrypt": "key",
    "kms:GenerateMac": "mac-key",
    "kms:VerifyMac": "mac-key",
    # the enrollment generation, a tag on the same key (keyturn.adapters.enrollment_generation)
    "kms:ListResourceTags": "mac-key",
    "kms:TagResource": "mac-key",
    # SNS (the operators' notice topic)
    "sns:Publish": "topic",
    # EventBridge (the consumers' bus: rotated / retired events)
    "events:PutEvents": "event-bus",
    # The exposed-key response (issue 15): whose key, what it did, where the record goes
    "sts:GetAccessKeyInfo": "",
    "cloudtrail:LookupEvents": "",
    "ec2:DescribeRegions": "",
    "s3:PutObject": "incident-object",
    # Lambda (the consumers' probe before promotion, rotate.probe)
    "lambda:InvokeFunction": "function",
    # CloudWatch Logs (the Lambda runtime writes the function's log stream)
    "logs:CreateLogStream": "log-stream",
    "logs:PutLogEvents": "log-stream",
}

# The parliament / AWS reference name of each kind (for the consistency test).
REFERENCE_NAME = {
    "user": "user",
    "group": "group",
    "mfa": "mfa",
    "identity": "identity",
    "role": "role",
    "table": "table",
    "queue": "queue",
    "secret": "Secret",
    "key": "key",
    "mac-key": "key",
    "log-stream": "log-stream",
    "topic": "topic",
    "event-bus": "event-bus",
    "incident-object": "object",
    "function": "function",
}

_IAM = "arn:${AWS::Partition}:iam::${AWS::AccountId}"
_REGIONAL = "${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}"


def regional(service: str, rest: str) -> str:
    return "arn:" + _REGIONAL.replace("{service}", service) + ":" + rest


# Default ARN(s) per kind; a function may narrow or widen one (see functions.py).
DEFAULT_SCOPE: dict[str, tuple[str, ...]] = {
    "user": (_IAM + ":user${UserPath}*",),
    "group": (_IAM + ":group/*",),
    "mfa": (_IAM + ":mfa/*",),
    "identity": (regional("ses", "identity/*"),),
    "role": ("arn:${AWS::Partition}:iam::*:role/${MemberRoleName}",),
    "table": (regional("dynamodb", "table/${LeaseTableName}"),),
    "queue": ("${AccountQueue.Arn}",),
    "secret": (regional("secretsmanager", "secret:${SecretPrefix}*"),),
    "key": (regional("kms", "key/*"),),
    "mac-key": ("${JournalKey.Arn}",),
    "topic": ("${NoticeTopic}",),
    "event-bus": (regional("events", "event-bus/${RotationEventBus}"),),
    "incident-object": ("${IncidentBucket.Arn}/incidents/*",),
    # The template grants it only when ProbeFunction is set (render.py, HasProbe).
    "function": ("${ProbeFunction}",),
    "log-stream": (regional("logs", "log-group:/aws/lambda/${AWS::StackName}-{function}:*"),),
}

# Values `keyturn policy` uses for the placeholders when nothing else is given; they
# match the template's parameter defaults.
PLACEHOLDER_DEFAULTS: dict[str, str] = {
    "AWS::Partition": "aws",
    "AWS::Region": "*",
    "AWS::AccountId": "*",
    "AWS::StackName": "keyturn",
    "UserPath": "/",
    "LeaseUserPath": "/",
    "LeaseUserPrefix": "keyturn",
    "LeaseTableName": "keyturn-leases",
    "SecretPrefix": "keyturn/",
    "MemberRoleName": "keyturn-member",
    "JournalKey.Arn": regional("kms", "key/*"),
    "AccountQueue.Arn": regional("sqs", "${AWS::StackName}-accounts"),
    "DeadLetterQueue.Arn": regional("sqs", "${AWS::StackName}-dead-letters"),
    "NoticeTopic": regional("sns", "${AWS::StackName}-notices"),
    "RotationEventBus": "default",
    "IncidentBucket.Arn": "arn:${AWS::Partition}:s3:::${AWS::StackName}-incidents",
    "ProbeFunction": regional("lambda", "function:${AWS::StackName}-probe"),
}
