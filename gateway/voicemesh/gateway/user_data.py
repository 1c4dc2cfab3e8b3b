"""UserDataService at the gateway: the core's answer, with the gateway's reply cache kept in step.

A deleted user's cached replies go with the rest of their data, and a changed profile drops them
too, since a reply may have used it. A caller reaches only the users its credential covers.
"""

from __future__ import annotations

from voicemesh.common.identity import user_key
from voicemesh.common.reply_cache import ReplyCache
from voicemesh.gateway.auth import caller
from voicemesh.gateway.downstream import Downstream
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.v1 import user_data_pb2 as pb
from voicemesh.v1 import user_data_pb2_grpc as pb_grpc

TIMEOUT_S = 10.0


def _owner(user_id: str) -> str:
    """The user as the core knows them (qualified by the caller's tenant), if this credential covers
    them; an empty id is the core's to refuse (it names it)."""
    if not user_id:
        return user_id
    identity = caller()
    return user_key(identity.tenant, identity.user_for(user_id))


class GatewayUserData(pb_grpc.UserDataServiceServicer):
    def __init__(self, downstream: Downstream, cache: ReplyCache) -> None:
        self._downstream = downstream
        self._cache = cache

    @rpc_handler
    async def GetUserData(self, request: pb.GetUserDataRequest, context: Context) -> pb.GetUserDataResponse:
        request.user_id = _owner(request.user_id)
        async with self._downstream.guard("core", slot=False) as core:
            response: pb.GetUserDataResponse = await core.users.GetUserData(request, timeout=TIMEOUT_S)
        return response

    @rpc_handler
    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: Context
    ) -> pb.UpdateProfileResponse:
        request.user_id = _owner(request.user_id)
        async with self._downstream.guard("core", slot=False) as core:
            response: pb.UpdateProfileResponse = await core.users.UpdateProfile(request, timeout=TIMEOUT_S)
        self._cache.drop_user(request.user_id)
        return response

    @rpc_handler
    async def DeleteUserData(
        self, request: pb.DeleteUserDataRequest, context: Context
    ) -> pb.DeleteUserDataResponse:
        request.user_id = _owner(request.user_id)
        cached = self._cache.drop_user(request.user_id)
        async with self._downstream.guard("core", slot=False) as core:
            response: pb.DeleteUserDataResponse = await core.users.DeleteUserData(request, timeout=TIMEOUT_S)
        response.cached_replies_deleted = cached
        return response
