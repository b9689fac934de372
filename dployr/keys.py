"""Every typed key of the application and of a request, in one place."""

from __future__ import annotations

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dployr.auth.clients import Client, TrustedProxies
from dployr.auth.follows import FollowSlots
from dployr.auth.ratelimit import Quota, RateLimits
from dployr.auth.service import AuthService, Identity
from dployr.config import Config
from dployr.crypto import SecretBox
from dployr.databases.manager import Databases
from dployr.events.bus import EventBus
from dployr.events.sockets import Sockets
from dployr.metrics.agent import AgentCounters
from dployr.metrics.recorder import HostRecorder
from dployr.metrics.services import ServiceRecorder
from dployr.pipeline.deployer import Deployer
from dployr.store.db import Database
from dployr.webhooks.worker import DeliveryWorker

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
AUTH = web.AppKey("auth", AuthService)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
STARTED_AT = web.AppKey("started_at", float)
BUS = web.AppKey("bus", EventBus)
BOX = web.AppKey("box", SecretBox)
DEPLOYER = web.AppKey("deployer", Deployer)
FOLLOWS = web.AppKey("follows", FollowSlots)  # open log-follow streams per user
AGENT_COUNTERS = web.AppKey("agent_counters", AgentCounters)  # requests, deployment ends
HOST_METRICS = web.AppKey("host_metrics", HostRecorder)  # the host sampler and its buffer
SERVICE_METRICS = web.AppKey("service_metrics", ServiceRecorder)  # each running service's
WEBHOOKS = web.AppKey("webhooks", DeliveryWorker)  # sends the deliveries; kick() wakes it
TRUSTED_PROXIES = web.AppKey("trusted_proxies", TrustedProxies)  # whose X-Forwarded-For counts
SOCKETS = web.AppKey("sockets", Sockets)  # open WebSockets (/api/v1/ws)
DATABASES = web.AppKey("databases", Databases)  # managed databases (SPEC §14)
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)  # every periodic job (dployr.scheduler)

CLIENT = web.RequestKey("client", Client)  # who is calling (middleware.client_of)
IDENTITY = web.RequestKey("identity", Identity)  # absent on anonymous requests
EXTRA_QUOTA = web.RequestKey("extra_quota", Quota)  # a tighter bucket a handler counted (login)
