"""The reply cache's own rules: exact words per user, bounded in entries, bytes and age."""

from __future__ import annotations

from voicemesh.common.reply_cache import CachedReply, ReplyCache, cache_key


def reply(text: str, audio_bytes: int = 0) -> CachedReply:
    return CachedReply("m", text, [text], [(b"\0" * audio_bytes, 16_000)] if audio_bytes else [])


def test_the_same_words_hit_whatever_their_case_and_punctuation() -> None:
    cache = ReplyCache("test")
    cache.put(cache_key("ada", "What time is it?", False), reply("Noon."))
    assert cache.get(cache_key("ada", "what time is it", False)) is not None
    assert cache.get(cache_key("ada", "what time is it now", False)) is None
    assert cache.get(cache_key("bob", "What time is it?", False)) is None  # another user
    assert cache.get(cache_key("ada", "What time is it?", True)) is None  # a spoken reply is another reply
    assert (cache.hits, cache.misses) == (1, 3) and cache.hit_rate == 0.25


def test_least_recently_used_go_first_by_count_and_by_bytes() -> None:
    cache = ReplyCache("test", max_entries=2, max_bytes=1000)
    for word in ("one", "two"):
        cache.put(cache_key("ada", word, False), reply(word))
    assert cache.get(cache_key("ada", "one", False)) is not None  # now "two" is the oldest
    cache.put(cache_key("ada", "three", False), reply("three"))
    assert cache.get(cache_key("ada", "two", False)) is None and len(cache) == 2
    cache.put(cache_key("ada", "big", True), reply("big", 995))
    assert len(cache) == 1 and cache.bytes <= 1000
    cache.put(cache_key("ada", "huge", True), reply("huge", 5000))  # bigger than the cache: not kept
    assert cache.get(cache_key("ada", "huge", True)) is None


def test_entries_expire_and_a_user_can_be_forgotten() -> None:
    now = [0.0]
    cache = ReplyCache("test", ttl_s=10, clock=lambda: now[0])
    cache.put(cache_key("ada", "hi", False), reply("Hello."))
    cache.put(cache_key("ada", "bye", False), reply("Goodbye."))
    cache.put(cache_key("bob", "hi", False), reply("Hello."))
    assert cache.drop_user("ada") == 2 and len(cache) == 1
    now[0] = 11
    assert cache.get(cache_key("bob", "hi", False)) is None and len(cache) == 0 and cache.bytes == 0
