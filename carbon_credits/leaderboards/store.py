"""Where the boards are kept: Redis sorted sets (``RedisStore``), or, for the embedded
default without Redis, an in-process stand-in with the same interface and the same
results (``MemoryStore``: one process only, lost on restart, rebuilt by
``flask rebuild-leaderboards``; for development and the one-process SQLite default).

**Scores** are credited micrograms of CO2 (the ledger's ``ug`` of ``earn`` and
``reversal`` entries), not points: a leaderboard ranks avoided CO2, and points carry other
things (a later ``bonus`` kind of campaigns, which must never count as grams; redemptions).
Micrograms rather than grams keep every sum exact and equal to the ledger's: a user's
score is the sum of their entries' ``ug``, never of rounded grams (Redis scores are
doubles, exact for integers below 2^53 µg, 9,000 t a user). Shown as whole grams.

**Ordering**: by score, high first; equal scores by user id, high first (Redis's
ZREVRANGE). Ranks start at 1.

Each operation of a city is ONE script call on the city's keys (``keys``: all in one
cluster slot), so it is one round trip and atomic: a credit updates every board an event
counts in, and moving a user into a team reads their scores and writes the team's boards
with no credit in between.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from carbon_credits.leaderboards import keys

FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""What counts as "Redis failed" (RedisClusterException is not a RedisError)."""


@dataclass(frozen=True)
class Credit:
    """One event's credit (``ug`` > 0) or its reversal (``ug`` < 0) for a user's boards."""

    user_id: str
    ug: int
    district: str | None
    """None: no district board (the event's stop has none)."""
    periods: tuple[tuple[str, int], ...]
    """(period label, Unix time its board is dropped, 0: never)."""
    hidden: bool = False
    """The user opted out of being shown: marked hidden in this city too (a first credit
    in a city other than those they were in when they opted out)."""


@dataclass(frozen=True)
class Row:
    user_id: str
    ug: int
    rank: int
    """1-based: the user's true standing on the board."""
    hidden: bool


@dataclass(frozen=True)
class Standing:
    top: list[Row]
    me: Row | None
    """The reader's own row (None: not on the board)."""
    size: int
    """People on the board."""


@dataclass(frozen=True)
class TeamRow:
    team_id: str
    ug: int
    """The sum of the team's board of the period: its members' totals."""
    rank: int
    """1-based, among the teams shown."""
    members: int
    """Members with credited grams in the period (on the team's board)."""


@dataclass(frozen=True)
class TeamStanding:
    top: list[TeamRow]
    mine: str | None
    """The reader's team in the city (None: in no team)."""
    me: TeamRow | None
    """Its row; None when it is not shown (fewer than k members) or has no grams."""
    size: int
    """Teams shown: those with at least k members on their board of the period."""


Board = tuple[str, Mapping[str, int], int]
"""A rebuilt board for ``replace``: (key, user -> µg, the Unix time it is dropped, 0:
never)."""

Place = tuple[int, int, int] | None
"""(1-based rank, µg, board size) of a user on a board, or None when not on it."""


@dataclass(frozen=True)
class Ranks:
    """A user's places on their city's boards and their district's (``ranks``)."""

    city: dict[str, Place]
    """Per period label asked."""
    district: str | None
    """The district whose all-time board holds most of the user's µg (ties: the first
    name); None when on no district board."""
    in_district: dict[str, Place]
    """Per period label asked (empty when ``district`` is None)."""


class Store(Protocol):
    def credit(self, city: str, credits: Sequence[Credit]) -> None: ...
    def standing(self, city: str, board: str, n: int, me: str | None,
                 omit_hidden: bool) -> Standing: ...
    def scores(self, city: str, board: str, users: Sequence[str]
               ) -> list[tuple[str, int | None, bool]]: ...
    def set_hidden(self, city: str, user_id: str, hidden: bool) -> None: ...
    def set_team(self, city: str, user_id: str, team_id: int | None,
                 periods: Sequence[tuple[str, int]]) -> None: ...
    def remove_user(self, city: str, user_id: str) -> None: ...
    def team_standing(self, city: str, label: str, n: int, user_id: str | None,
                      k: int) -> TeamStanding: ...
    def ranks(self, city: str, user_id: str, labels: Sequence[str]) -> Ranks: ...
    def replace(self, city: str, boards: Iterable[Board], hidden: Iterable[str],
                teams: Mapping[str, int]) -> None: ...
    def snapshot(self, city: str) -> dict[str, dict[str, int]]: ...
    def marks(self, city: str) -> tuple[set[str], dict[str, str]]: ...


def _board_keys(city: str, user_id: str, team: str | None, district: str | None,
                label: str) -> list[str]:
    scopes = [keys.city_scope()]
    if district:
        scopes.append(keys.district_scope(district))
    if team:
        scopes.append(keys.team_scope(team))
    return [keys.board(city, scope, label) for scope in scopes]


# ---------------------------------------------------------------- in-process stand-in


class MemoryStore:
    """The same boards in this process's memory (see the module docstring)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._boards: dict[str, dict[str, int]] = {}
        self._expiry: dict[str, int] = {}
        self._hidden: dict[str, set[str]] = {}
        self._teams: dict[str, dict[str, str]] = {}
        self._clock = clock

    def _live(self, key: str) -> dict[str, int] | None:
        expire = self._expiry.get(key, 0)
        if expire and expire <= self._clock():
            self._boards.pop(key, None)
            self._expiry.pop(key, None)
        return self._boards.get(key)

    def _add(self, key: str, member: str, delta: int, expire: int) -> int:
        """``delta`` on ``member``'s score (a negative one never creates a board; a member
        at or below zero leaves it); the change actually made."""
        board = self._live(key)
        if delta > 0:
            if board is None:
                board = self._boards[key] = {}
            board[member] = board.get(member, 0) + delta
            if expire:
                self._expiry[key] = expire
            return delta
        if board is None or not delta:
            return 0
        old = board.get(member, 0)
        score = old + delta
        if score > 0:
            board[member] = score
            return delta
        board.pop(member, None)
        if not board:
            del self._boards[key]
            self._expiry.pop(key, None)
        return -old

    def _add_team(self, city: str, team: str, label: str, change: int, expire: int) -> None:
        """The team-vs-team board follows what its team's board gained or lost."""
        if change:
            self._add(keys.board(city, keys.teams_scope(), label), team, change, expire)

    def credit(self, city: str, credits: Sequence[Credit]) -> None:
        with self._lock:
            for c in credits:
                if c.hidden:
                    self._hidden.setdefault(city, set()).add(c.user_id)
                team = self._teams.get(city, {}).get(c.user_id)
                for label, expire in c.periods:
                    for key in _board_keys(city, c.user_id, team, c.district, label):
                        change = self._add(key, c.user_id, c.ug, expire)
                        if team is not None and key == keys.board(
                                city, keys.team_scope(team), label):
                            self._add_team(city, team, label, change, expire)

    @staticmethod
    def _ordered(board: Mapping[str, int]) -> list[tuple[str, int]]:
        return sorted(board.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)

    def standing(self, city: str, board: str, n: int, me: str | None,
                 omit_hidden: bool) -> Standing:
        with self._lock:
            members = self._live(board) or {}
            hidden = self._hidden.get(city, set())
            ordered = self._ordered(members)
            top: list[Row] = []
            mine: Row | None = None
            for rank, (user, ug) in enumerate(ordered, start=1):
                row = Row(user, ug, rank, user in hidden)
                if user == me:
                    mine = row
                if len(top) < n and not (omit_hidden and row.hidden and user != me):
                    top.append(row)
            return Standing(top, mine, len(members))

    def scores(self, city: str, board: str, users: Sequence[str]
               ) -> list[tuple[str, int | None, bool]]:
        with self._lock:
            members = self._live(board) or {}
            hidden = self._hidden.get(city, set())
            return [(u, members.get(u), u in hidden) for u in users]

    def set_hidden(self, city: str, user_id: str, hidden: bool) -> None:
        with self._lock:
            users = self._hidden.setdefault(city, set())
            if hidden:
                users.add(user_id)
            else:
                users.discard(user_id)

    def set_team(self, city: str, user_id: str, team_id: int | None,
                 periods: Sequence[tuple[str, int]]) -> None:
        with self._lock:
            teams = self._teams.setdefault(city, {})
            old = teams.pop(user_id, None)
            for label, _expire in periods:
                if old is not None:
                    key = keys.board(city, keys.team_scope(old), label)
                    board = self._live(key)
                    if board is not None and user_id in board:
                        self._add_team(city, old, label,
                                       self._add(key, user_id, -board[user_id], 0), 0)
            if team_id is None:
                return
            teams[user_id] = str(team_id)
            for label, expire in periods:
                city_board = self._live(keys.board(city, keys.city_scope(), label))
                if city_board and user_id in city_board:
                    key = keys.board(city, keys.team_scope(team_id), label)
                    self._boards.setdefault(key, {})[user_id] = city_board[user_id]
                    if expire:
                        self._expiry[key] = expire
                    self._add_team(city, str(team_id), label, city_board[user_id], expire)

    def remove_user(self, city: str, user_id: str) -> None:
        with self._lock:
            team = self._teams.get(city, {}).get(user_id)
            if team is not None:  # the team's totals lose what the user added to them
                mine = keys.board(city, keys.team_scope(team), "")
                for key in [k for k in self._boards if k.startswith(mine)]:
                    board = self._live(key)
                    if board is not None and user_id in board:
                        self._add_team(city, team, key[len(mine):], -board[user_id], 0)
            teams_boards = keys.board(city, keys.teams_scope(), "")
            for key in [k for k in self._boards if k.startswith(keys.prefix(city))
                        and not k.startswith(teams_boards)]:
                board = self._live(key)
                if board is not None and board.pop(user_id, None) is not None and not board:
                    del self._boards[key]
                    self._expiry.pop(key, None)
            self._hidden.get(city, set()).discard(user_id)
            self._teams.get(city, {}).pop(user_id, None)

    def team_standing(self, city: str, label: str, n: int, user_id: str | None,
                      k: int) -> TeamStanding:
        with self._lock:
            totals = self._live(keys.board(city, keys.teams_scope(), label)) or {}
            mine = self._teams.get(city, {}).get(user_id) if user_id else None
            top: list[TeamRow] = []
            me: TeamRow | None = None
            rank = 0
            for team, ug in self._ordered(totals):
                members = len(self._live(keys.board(city, keys.team_scope(team), label))
                              or {})
                if members >= k:
                    rank += 1
                    row = TeamRow(team, ug, rank, members)
                    if rank <= n:
                        top.append(row)
                    if team == mine:
                        me = row
            return TeamStanding(top, mine, me, rank)

    def ranks(self, city: str, user_id: str, labels: Sequence[str]) -> Ranks:
        with self._lock:
            head = keys.prefix(city) + keys.district_scope("")
            found = [(-score, key[len(head):-len(":all")]) for key in list(self._boards)
                     if key.startswith(head) and key.endswith(":all")
                     and (score := (self._live(key) or {}).get(user_id)) is not None]
            district = min(found)[1] if found else None  # most µg; ties: the first name

            def place(key: str) -> Place:
                board = self._live(key) or {}
                if user_id not in board:
                    return None
                ordered = [u for u, _ in self._ordered(board)]
                return ordered.index(user_id) + 1, board[user_id], len(board)

            return Ranks(
                {label: place(keys.board(city, keys.city_scope(), label))
                 for label in labels}, district,
                {} if district is None else {
                    label: place(keys.board(city, keys.district_scope(district), label))
                    for label in labels})

    def replace(self, city: str, boards: Iterable[Board], hidden: Iterable[str],
                teams: Mapping[str, int]) -> None:
        staged = [(key, dict(board), expire) for key, board, expire in boards if board]
        with self._lock:
            for key in [k for k in self._boards if k.startswith(keys.prefix(city))]:
                del self._boards[key]
                self._expiry.pop(key, None)
            for key, board, expire in staged:
                self._boards[key] = board
                if expire:
                    self._expiry[key] = expire
            self._hidden[city] = set(hidden)
            self._teams[city] = {u: str(t) for u, t in teams.items()}

    def marks(self, city: str) -> tuple[set[str], dict[str, str]]:
        """The city's hidden users and team map (user -> team id)."""
        with self._lock:
            return set(self._hidden.get(city, set())), dict(self._teams.get(city, {}))

    def snapshot(self, city: str) -> dict[str, dict[str, int]]:
        with self._lock:
            out = {}
            for key in list(self._boards):
                if key.startswith(keys.prefix(city)):
                    board = self._live(key)
                    if board:
                        out[key] = dict(board)
            return out


# ---------------------------------------------------------------- Redis

_TEAMS_ADD = """
-- The team-vs-team board follows what a team's board gained or lost (as a board: a
-- decrease never creates it, and a team at or below zero leaves it).
local function teams_add(registry, prefix, team, label, change, expire)
  if change == 0 then return end
  local key = prefix .. "teams:" .. label
  -- %.17g: every integer score (a double) exactly, where Lua's own tostring keeps 14 digits
  local amount = string.format("%.17g", change)
  if change > 0 then
    redis.call("ZINCRBY", key, amount, team)
    if expire ~= "0" then redis.call("EXPIREAT", key, expire) end
    redis.call("SADD", registry, key)
  elseif redis.call("EXISTS", key) == 1 then
    if tonumber(redis.call("ZINCRBY", key, amount, team)) <= 0 then
      redis.call("ZREM", key, team)
    end
  end
end
"""

_CREDIT = _TEAMS_ADD + """
local registry, teammap, hidden, prefix = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local i = 2
while i <= #ARGV do
  local user, delta, district = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local np = tonumber(ARGV[i + 3])
  if ARGV[i + 4] == "1" then redis.call("SADD", hidden, user) end
  i = i + 5
  local scopes = {"city"}
  if district ~= "" then
    scopes[#scopes + 1] = "district:" .. district
    if delta > 0 then redis.call("SADD", KEYS[4], district) end
  end
  local team = redis.call("HGET", teammap, user)
  if team then scopes[#scopes + 1] = "team:" .. team end
  for p = 0, np - 1 do
    local label, expire = ARGV[i + 2 * p], ARGV[i + 2 * p + 1]
    for s, scope in ipairs(scopes) do
      local key = prefix .. scope .. ":" .. label
      local change = 0
      if delta > 0 then
        redis.call("ZINCRBY", key, delta, user)
        if expire ~= "0" then redis.call("EXPIREAT", key, expire) end
        redis.call("SADD", registry, key)
        change = delta
      elseif redis.call("EXISTS", key) == 1 then
        -- a reversal never creates a board: one already dropped stays dropped
        local old = tonumber(redis.call("ZSCORE", key, user) or "0")
        if tonumber(redis.call("ZINCRBY", key, delta, user)) <= 0 then
          redis.call("ZREM", key, user)
          change = -old
        else
          change = delta
        end
      end
      if team and s == #scopes then
        teams_add(registry, prefix, team, label, change, expire)
      end
    end
  end
  i = i + 2 * np
end
return 1
"""

_STANDING = """
local board, hidden = KEYS[1], KEYS[2]
local n, me, omit = tonumber(ARGV[1]), ARGV[2], ARGV[3] == "1"
local anyone_hidden = redis.call("SCARD", hidden) > 0
local out = {}
local start = 0
local found = 0
while found < n do
  local page = redis.call("ZREVRANGE", board, start, start + n - 1, "WITHSCORES")
  if #page == 0 then break end
  local ids = {}
  for j = 1, #page, 2 do ids[#ids + 1] = page[j] end
  -- one SMISMEMBER for the page, and none while nobody has opted out
  local flags = anyone_hidden and redis.call("SMISMEMBER", hidden, unpack(ids)) or nil
  for k, user in ipairs(ids) do
    local h = flags and flags[k] or 0
    if not (omit and h == 1 and user ~= me) and found < n then
      out[#out + 1] = user
      out[#out + 1] = page[2 * k]
      out[#out + 1] = start + k - 1
      out[#out + 1] = h
      found = found + 1
    end
  end
  start = start + n
  if not omit then break end
end
local rank, score, mine = -1, "", 0
if me ~= "" then
  local r = redis.call("ZREVRANK", board, me)
  if r then
    rank = r
    score = redis.call("ZSCORE", board, me)
    if anyone_hidden then mine = redis.call("SISMEMBER", hidden, me) end
  end
end
return {out, rank, score, mine, redis.call("ZCARD", board)}
"""

_SET_TEAM = _TEAMS_ADD + """
local registry, teammap, prefix = KEYS[1], KEYS[2], ARGV[1]
local user, team = ARGV[2], ARGV[3]
local old = redis.call("HGET", teammap, user)
for i = 4, #ARGV, 2 do
  if old then
    local key = prefix .. "team:" .. old .. ":" .. ARGV[i]
    local score = redis.call("ZSCORE", key, user)
    if score then
      redis.call("ZREM", key, user)
      teams_add(registry, prefix, old, ARGV[i], -tonumber(score), "0")
    end
  end
end
redis.call("HDEL", teammap, user)
if team == "" then return 1 end
redis.call("HSET", teammap, user, team)
for i = 4, #ARGV, 2 do
  local label, expire = ARGV[i], ARGV[i + 1]
  local score = redis.call("ZSCORE", prefix .. "city:" .. label, user)
  if score then
    local key = prefix .. "team:" .. team .. ":" .. label
    redis.call("ZADD", key, score, user)
    if expire ~= "0" then redis.call("EXPIREAT", key, expire) end
    redis.call("SADD", registry, key)
    teams_add(registry, prefix, team, label, tonumber(score), expire)
  end
end
return 1
"""

_REMOVE_USER = _TEAMS_ADD + """
local registry, teammap, hidden, user = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local prefix = ARGV[2]
local team = redis.call("HGET", teammap, user)
local mine = team and (prefix .. "team:" .. team .. ":") or nil
local totals = prefix .. "teams:"
for _, key in ipairs(redis.call("SMEMBERS", registry)) do
  if redis.call("EXISTS", key) == 0 then
    redis.call("SREM", registry, key)
  elseif string.sub(key, 1, #totals) ~= totals then
    -- (the team-vs-team boards' members are teams, not users: left alone)
    if mine and string.sub(key, 1, #mine) == mine then
      local score = redis.call("ZSCORE", key, user)
      if score then
        teams_add(registry, prefix, team, string.sub(key, #mine + 1), -tonumber(score), "0")
      end
    end
    redis.call("ZREM", key, user)
  end
end
redis.call("HDEL", teammap, user)
redis.call("SREM", hidden, user)
return 1
"""

_TEAM_STANDING = """
-- KEYS: the team-vs-team board, the team map. Teams with fewer than k members on their
-- own board of the period are not shown, and ranks count only the teams shown.
local board, teammap = KEYS[1], KEYS[2]
local prefix, label = ARGV[1], ARGV[2]
local n, user, k = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local mine = false
if user ~= "" then mine = redis.call("HGET", teammap, user) end
local out, me, rank = {}, {}, 0
local all = redis.call("ZREVRANGE", board, 0, -1, "WITHSCORES")
for j = 1, #all, 2 do
  local team = all[j]
  local members = redis.call("ZCARD", prefix .. "team:" .. team .. ":" .. label)
  if members >= k then
    rank = rank + 1
    if rank <= n then
      out[#out + 1] = team
      out[#out + 1] = all[j + 1]
      out[#out + 1] = rank
      out[#out + 1] = members
    end
    if team == mine then me = {all[j + 1], rank, members} end
  end
end
return {out, mine or "", me, rank}
"""

_RANKS = """
-- KEYS: the city's district names. ARGV: prefix, user, period labels. The user's
-- district: the one whose all-time board holds most of their score (ties: first name).
local prefix, user = ARGV[1], ARGV[2]
local best, best_score = "", -1
for _, name in ipairs(redis.call("SMEMBERS", KEYS[1])) do
  local s = redis.call("ZSCORE", prefix .. "district:" .. name .. ":all", user)
  if s then
    s = tonumber(s)
    if s > best_score or (s == best_score and name < best) then
      best, best_score = name, s
    end
  end
end
local function place(key)
  local r = redis.call("ZREVRANK", key, user)
  if not r then return {-1, "0", 0} end
  return {r, redis.call("ZSCORE", key, user), redis.call("ZCARD", key)}
end
local out = {best}
for i = 3, #ARGV do
  out[#out + 1] = place(prefix .. "city:" .. ARGV[i])
  if best ~= "" then
    out[#out + 1] = place(prefix .. "district:" .. best .. ":" .. ARGV[i])
  else
    out[#out + 1] = {-1, "0", 0}
  end
end
return out
"""

_SWAP = """
-- KEYS: registry, teammap, hidden, new teammap, new hidden, districts; ARGV: new key,
-- final key, expiry, ..., then the district boards' key prefix: the rebuilt boards
-- replace every board of the city at once.
local registry = KEYS[1]
for _, key in ipairs(redis.call("SMEMBERS", registry)) do redis.call("UNLINK", key) end
redis.call("DEL", registry)
for i = 1, #ARGV - 1, 3 do
  redis.call("RENAME", ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] ~= "0" then redis.call("EXPIREAT", ARGV[i + 1], ARGV[i + 2]) end
  redis.call("SADD", registry, ARGV[i + 1])
end
redis.call("DEL", KEYS[2], KEYS[3])
if redis.call("EXISTS", KEYS[4]) == 1 then redis.call("RENAME", KEYS[4], KEYS[2]) end
if redis.call("EXISTS", KEYS[5]) == 1 then redis.call("RENAME", KEYS[5], KEYS[3]) end
-- KEYS[6]: the district names, from the new boards' keys (<prefix>district:<name>:<label>)
redis.call("DEL", KEYS[6])
local head = ARGV[#ARGV]
for i = 2, #ARGV - 1, 3 do
  local key = ARGV[i]
  if string.sub(key, 1, #head) == head then
    local name = string.match(string.sub(key, #head + 1), "^(.*):[^:]*$")
    if name then redis.call("SADD", KEYS[6], name) end
  end
end
return 1
"""


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


RedisClient = redis.Redis | RedisCluster

WRITE_CHUNK = 10_000
"""Places per ZADD when a rebuild writes a board (bounded command size)."""
WRITE_BATCH_BYTES = 4 << 20
"""Bytes of commands a rebuild sends at a time."""
WRITE_TIMEOUT_S = 60.0
"""The socket timeout of a rebuild's writes."""
WRITE_AHEAD = 4
"""Batches a rebuild may have sent and not yet seen answered (the bytes it holds for
Redis: at most this many batches and the one being made)."""
PADDED = 10**16
"""Scores below this are sent zero-padded to 16 digits (every score up to 2^53 µg, the
largest integer a double holds exactly, is)."""


def _zadd_commands(temp: str, board: Mapping[str, int],
                   pack: Callable[..., list[bytes]]) -> Iterator[list[bytes]]:
    """The ZADDs writing ``board`` into the new key ``temp``, ``WRITE_CHUNK`` places a
    command, in Redis's wire format (RESP).

    The places go from the highest score down: Redis then inserts each one at the head
    of the sorted set's skip list, with no search (1.48 M places of 114 boards: 1.2 s of
    Redis CPU so, 2.0 s in no order; BENCHMARKS 19b). A place is written here as one
    string, ``$16\r\n<score>\r\n$<n>\r\n<member>\r\n``, the score zero-padded to 16
    digits, so the strings sort as their scores do and a chunk is one join: encoding two
    arguments a place through the client library cost more than the rest of the rebuild,
    and a Lua script parsing lines cost Redis ~0.6 us a place more than ZADD's own
    parsing. A board with a non-ASCII member (whose length in bytes is not its length in
    characters), or a score out of (0, 10^16), goes through the library's encoder
    (``pack``)."""
    head = f"${len(temp.encode())}\r\n{temp}\r\n"
    if (board and "".join(board).isascii() and min(board.values()) > 0
            and max(board.values()) < PADDED):
        places = [f"$16\r\n{str(score).zfill(16)}\r\n${len(u)}\r\n{u}\r\n"
                  for u, score in board.items()]
        places.sort(reverse=True)
        for start in range(0, len(places), WRITE_CHUNK):
            chunk = places[start:start + WRITE_CHUNK]
            yield [f"*{2 + 2 * len(chunk)}\r\n$4\r\nZADD\r\n{head}".encode(),
                   "".join(chunk).encode()]
        return
    ordered = sorted(board.items(), key=itemgetter(1), reverse=True)
    for start in range(0, len(ordered), WRITE_CHUNK):
        yield pack("ZADD", temp, *[part for u, score in ordered[start:start + WRITE_CHUNK]
                                   for part in (score, u)])


class _Writer:
    """A rebuild's writes on one connection to the node of the city's keys, sent
    ``WRITE_BATCH_BYTES`` at a time from a worker thread: Redis executes the batches sent
    while the caller makes the next ones (the socket waits release the GIL); the caller
    waits when ``WRITE_AHEAD`` batches are unanswered."""

    def __init__(self, client: redis.Redis) -> None:
        # A connection of its own, with a batch job's timeout: the pool's connections
        # carry the ingest path's (0.5 s, factory.REDIS_TIMEOUT_S), which a write queued
        # behind megabytes of others can exceed on a loaded host.
        pool = client.connection_pool
        self._conn: Any = pool.connection_class(
            **{**pool.connection_kwargs, "socket_timeout": WRITE_TIMEOUT_S})
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lb-rebuild")
        self._sent: deque[Future[None]] = deque()
        self._batch: list[bytes] = []
        self._commands = 0
        self._size = 0
        self._broken = False

    def pack(self, *args: Any) -> list[bytes]:
        return list(self._conn.pack_command(*args))

    def add(self, packed: list[bytes]) -> None:
        self._batch += packed
        self._commands += 1
        self._size += sum(len(part) for part in packed)
        if self._size >= WRITE_BATCH_BYTES:
            self._flush()

    def _send(self, batch: list[bytes], commands: int) -> None:
        if self._broken:  # an earlier batch failed: its error is raised by its future
            return
        try:
            self._conn.send_packed_command(batch, check_health=False)
            for _ in range(commands):
                self._conn.read_response()  # raises an error reply
        except BaseException:
            self._broken = True  # replies may be left unread: nothing more is sent
            raise

    def _flush(self) -> None:
        while len(self._sent) >= WRITE_AHEAD or (self._sent and self._sent[0].done()):
            self._sent.popleft().result()  # an earlier batch's failure, raised here
        if self._commands:
            self._sent.append(self._executor.submit(self._send, self._batch, self._commands))
        self._batch, self._commands, self._size = [], 0, 0

    def close(self, wait_only: bool = False) -> None:
        """Send what is left and wait for every reply (``wait_only``: drop what is left,
        wait for the batches sent, raise nothing), then close the connection."""
        try:
            if not wait_only:
                self._flush()
            while self._sent:
                sent = self._sent.popleft()
                if wait_only:
                    with contextlib.suppress(Exception):
                        sent.result()
                else:
                    sent.result()
        finally:
            self._sent.clear()
            self._executor.shutdown(wait=True)
            self._conn.disconnect()


class RedisStore:
    """The boards in Redis or Redis Cluster (see the module docstring and ``keys``)."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._cluster: RedisCluster | None = (client if isinstance(client, RedisCluster)
                                              else None)
        self._probed = self._cluster is not None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connections (the cluster client this store made, and the seed's)."""
        if self._cluster is not None and self._cluster is not self._client:
            self._cluster.close()
        self._client.close()

    def _backend(self) -> RedisClient:
        if self._cluster is not None:
            return self._cluster
        if not self._probed:
            assert isinstance(self._client, redis.Redis)
            info: dict[str, Any] = self._client.info("cluster")
            if info.get("cluster_enabled"):
                # The same switch as the rate limiter's (REDIS_URL may name any node).
                with self._lock:
                    self._cluster = _cluster_like(self._client)
                self._probed = True
                return self._cluster
            self._probed = True
        return self._client

    def _run(self, source: str, script_keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One EVALSHA (EVAL after a NOSCRIPT, which also caches the script)."""
        backend = self._backend()
        sha = _sha1(source)
        try:
            return backend.evalsha(sha, len(script_keys), *script_keys, *args)
        except NoScriptError:
            return backend.eval(source, len(script_keys), *script_keys, *args)

    def credit(self, city: str, credits: Sequence[Credit]) -> None:
        args: list[Any] = [keys.prefix(city)]
        for c in credits:
            args += [c.user_id, c.ug, c.district or "", len(c.periods), int(c.hidden)]
            for label, expire in c.periods:
                args += [label, expire]
        self._run(_CREDIT, [keys.registry(city), keys.teams(city), keys.hidden(city),
                            keys.districts(city)], args)

    def standing(self, city: str, board: str, n: int, me: str | None,
                 omit_hidden: bool) -> Standing:
        out, rank, score, mine, size = self._run(
            _STANDING, [board, keys.hidden(city)], [n, me or "", 1 if omit_hidden else 0])
        top = [Row(_text(out[i]), _int(out[i + 1]), int(out[i + 2]) + 1, bool(out[i + 3]))
               for i in range(0, len(out), 4)]
        me_row = (Row(me, _int(score), int(rank) + 1, bool(mine))
                  if me and int(rank) >= 0 else None)
        return Standing(top, me_row, int(size))

    def scores(self, city: str, board: str, users: Sequence[str]
               ) -> list[tuple[str, int | None, bool]]:
        if not users:
            return []
        pipe = self._backend().pipeline(transaction=False)
        pipe.zmscore(board, list(users))
        pipe.smismember(keys.hidden(city), list(users))
        found, hidden = pipe.execute()
        return [(u, None if s is None else _int(s), bool(h))
                for u, s, h in zip(users, found, hidden, strict=True)]

    def set_hidden(self, city: str, user_id: str, hidden: bool) -> None:
        backend = self._backend()
        if hidden:
            backend.sadd(keys.hidden(city), user_id)
        else:
            backend.srem(keys.hidden(city), user_id)

    def set_team(self, city: str, user_id: str, team_id: int | None,
                 periods: Sequence[tuple[str, int]]) -> None:
        args: list[Any] = [keys.prefix(city), user_id, "" if team_id is None else team_id]
        for label, expire in periods:
            args += [label, expire]
        self._run(_SET_TEAM, [keys.registry(city), keys.teams(city)], args)

    def remove_user(self, city: str, user_id: str) -> None:
        self._run(_REMOVE_USER, [keys.registry(city), keys.teams(city), keys.hidden(city)],
                  [user_id, keys.prefix(city)])

    def team_standing(self, city: str, label: str, n: int, user_id: str | None,
                      k: int) -> TeamStanding:
        board = keys.board(city, keys.teams_scope(), label)
        out, mine, me, size = self._run(_TEAM_STANDING, [board, keys.teams(city)],
                                        [keys.prefix(city), label, n, user_id or "", k])
        top = [TeamRow(_text(out[i]), _int(out[i + 1]), int(out[i + 2]), int(out[i + 3]))
               for i in range(0, len(out), 4)]
        mine_id = _text(mine) or None
        me_row = (TeamRow(mine_id, _int(me[0]), int(me[1]), int(me[2]))
                  if mine_id and me else None)
        return TeamStanding(top, mine_id, me_row, int(size))

    def ranks(self, city: str, user_id: str, labels: Sequence[str]) -> Ranks:
        found = self._run(_RANKS, [keys.districts(city)],
                          [keys.prefix(city), user_id, *labels])
        district = _text(found[0]) or None

        def place(raw: Any) -> Place:
            rank, score, size = raw
            return None if int(rank) < 0 else (int(rank) + 1, _int(score), int(size))

        return Ranks({label: place(found[1 + 2 * i]) for i, label in enumerate(labels)},
                     district,
                     {} if district is None else {
                         label: place(found[2 + 2 * i]) for i, label in enumerate(labels)})

    def replace(self, city: str, boards: Iterable[Board], hidden: Iterable[str],
                teams: Mapping[str, int]) -> None:
        """Write the rebuilt boards under staging names as they come (``boards`` may be a
        stream: each board is written while the next is being computed), then swap them
        in with one script: readers see the old boards or the new ones, never a
        half-written one. A failure before the swap removes what was staged."""
        backend = self._backend()
        stamp = f"{time.time_ns():x}"
        staged = keys.prefix(city) + f"rebuild-{stamp}:"
        swaps: list[Any] = []
        written: list[str] = []
        writer = _Writer(self._node(backend, staged))
        try:
            for n, (key, board, expire) in enumerate(boards):
                if not board:
                    continue
                temp = f"{staged}{n}"
                written.append(temp)
                for command in _zadd_commands(temp, board, writer.pack):
                    writer.add(command)
                swaps += [temp, key, expire]
            new_hidden, new_teams = f"{staged}hidden", f"{staged}team"
            written += [new_hidden, new_teams]
            members = list(hidden)
            if members:
                writer.add(writer.pack("SADD", new_hidden, *members))
            if teams:
                writer.add(writer.pack("HSET", new_teams, *[
                    part for u, t in teams.items() for part in (u, str(t))]))
            writer.close()
        except BaseException:
            writer.close(wait_only=True)
            for start in range(0, len(written), 1000):
                with contextlib.suppress(*FAILURES):
                    backend.unlink(*written[start:start + 1000])
            raise
        self._run(_SWAP, [keys.registry(city), keys.teams(city), keys.hidden(city),
                          new_teams, new_hidden, keys.districts(city)],
                  [*swaps, keys.prefix(city) + keys.district_scope("")])

    @staticmethod
    def _node(backend: RedisClient, key: str) -> redis.Redis:
        """The client of the node holding ``key`` (on a cluster: the city's slot's)."""
        if isinstance(backend, RedisCluster):
            node = backend.get_node_from_key(key)  # type: ignore[no-untyped-call]
            client: Any = backend.get_redis_connection(node)
            return client  # type: ignore[no-any-return]
        return backend

    def marks(self, city: str) -> tuple[set[str], dict[str, str]]:
        backend = self._backend()
        members: Any = backend.smembers(keys.hidden(city))
        mapping: Any = backend.hgetall(keys.teams(city))
        hidden = {_text(u) for u in members}
        teams = {_text(u): _text(t) for u, t in mapping.items()}
        return hidden, teams

    def snapshot(self, city: str) -> dict[str, dict[str, int]]:
        backend = self._backend()
        out: dict[str, dict[str, int]] = {}
        registered: Any = backend.smembers(keys.registry(city))
        for raw in registered:
            key = _text(raw)
            members: Any = backend.zrange(key, 0, -1, withscores=True)
            board = {_text(u): _int(s) for u, s in members}
            if board:
                out[key] = board
        return out


def _cluster_like(client: redis.Redis) -> RedisCluster:
    """A RedisCluster client with ``client``'s node as seed and its credentials/timeouts
    (as the rate limiter's ``redis_gcra._cluster_like``; not imported: antifraud imports
    the ledger, which imports this package)."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items()
              if k not in ("host", "port", "db", "retry", "path")}
    if issubclass(pool.connection_class, SSLConnection):
        kwargs["ssl"] = True
    return RedisCluster(host=pool.connection_kwargs["host"],
                        port=int(pool.connection_kwargs.get("port", 6379)),
                        retry=Retry(NoBackoff(), 1), **kwargs)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    return int(float(value))
