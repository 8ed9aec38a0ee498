"""Reference for ``load_bench.py``: the smallest Starlette app on the same uvicorn.

POST /graphql reads the JSON body and answers a fixed JSON result: what one uvicorn worker
on this machine manages with no GraphQL at all, the ceiling the hub's figures sit under.
``logged_app`` is the same behind the access log ``capahub serve`` mounts.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from catalog.access_log import AccessLog

BODY = orjson.dumps({"data": {"node": {"id": "capability:x", "name": "X"}}})


async def graphql(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])
logged_app = AccessLog(app)
