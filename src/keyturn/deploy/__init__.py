"""Deployment: which Lambda functions exist, what each may call, and the artifacts built
from that (policies, the SAM template, the zip). Nothing here runs inside a handler."""
