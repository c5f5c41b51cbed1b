"""Directory offsets that name a listing and a place in it (dir_cookies): what the kernel and
telldir(3) get back from a READDIR where no OPENDIR gave a handle."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from unionfs.dir_cookies import SLOTS, Listings, decode, encode

slots = st.integers(0, SLOTS - 1)
indexes = st.integers(1, (1 << 55) - 1)


@given(slots, indexes)
def test_a_cookie_gives_back_its_slot_and_index_and_is_never_zero(slot, index):
    cookie = encode(slot, index)
    assert decode(cookie) == (slot, index)
    assert 0 < cookie < 1 << 63  # a loff_t the kernel accepts, never "from the start"


@given(slots, st.integers(1, (1 << 23) - 1))
def test_cookies_fit_a_32_bit_telldir_up_to_eight_million_entries(slot, index):
    assert encode(slot, index) < 1 << 31


@given(slots, st.integers(0, 1 << 40))
def test_the_next_entry_cookie_is_one_step_on(slot, index):
    """READDIR replies add SLOTS per entry (dirent.pack_dirents' `step`)."""
    assert encode(slot, index) + SLOTS == encode(slot, index + 1)


class Dir:
    """A directory whose listing changes between reads (counts its reads)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.reads = 0

    def read(self) -> list[str]:
        self.reads += 1
        return list(self.names)


def test_pages_of_one_read_come_from_its_listing_whatever_changes():
    d = Dir([".", "..", "a", "b", "c", "d"])
    listings = Listings()
    first = listings.page(7, 0, d.read)
    assert (first.index, first.names) == (0, d.names)
    after_b = first.cookie + 4 * first.step  # what the kernel sends after ".", "..", "a", "b"
    d.names = [".", "..", "c", "d"]  # a and b removed between the pages (rm -rf)
    second = listings.page(7, after_b, d.read)
    assert second.names[second.index :] == ["c", "d"] and second.cookie == after_b and d.reads == 1
    again = listings.page(7, 0, d.read)  # rewinddir: a new listing
    assert again.names == [".", "..", "c", "d"] and d.reads == 2
    assert decode(again.cookie)[0] != decode(first.cookie)[0]  # both kept: two readers


def test_two_readers_of_one_directory_each_keep_their_listing():
    d = Dir([".", "..", "a", "b"])
    listings = Listings()
    one = listings.page(3, 0, d.read)
    d.names = [".", "..", "a", "b", "new"]
    two = listings.page(3, 0, d.read)
    assert listings.page(3, one.cookie + 2 * one.step, d.read).names == [".", "..", "a", "b"]
    assert listings.page(3, two.cookie + 2 * two.step, d.read).names == [".", "..", "a", "b", "new"]


def test_a_cookie_whose_listing_is_gone_reads_on_at_its_index_in_a_new_one():
    """Evicted (least recently used) or its slot now another directory's: the same index in a
    new listing of the directory, which the rest of that read then follows."""
    d = Dir([".", "..", "a", "b", "c"])
    other = Dir([".", "..", "x"])
    listings = Listings(slots=2)
    old = listings.page(5, 0, d.read)
    cookie = old.cookie + 3 * old.step  # after "a"
    listings.page(6, 0, other.read)
    listings.page(6, 0, other.read)  # two listings of 6: 5's slot was least recently used
    assert len(listings) == 2 and d.reads == 1
    page = listings.page(5, cookie, d.read)
    assert d.reads == 2 and page.index == 3 and page.names[page.index :] == ["b", "c"]
    assert decode(page.cookie) != decode(cookie) and decode(page.cookie)[1] == 3
    assert listings.page(5, page.cookie + page.step, d.read).names[4:] == ["c"] and d.reads == 2


def test_a_cookie_naming_another_directorys_listing_is_not_served_from_it():
    a, b = Dir([".", "..", "a1", "a2"]), Dir([".", "..", "b1", "b2"])
    listings = Listings()
    page_a = listings.page(10, 0, a.read)
    got = listings.page(11, page_a.cookie + 2 * page_a.step, b.read)
    assert got.names[got.index :] == ["b1", "b2"] and b.reads == 1


def test_the_listings_kept_are_bounded_by_names_but_the_newest_is_kept():
    listings = Listings(max_names=10)
    small = listings.page(1, 0, Dir(["x"] * 4).read)
    listings.page(2, 0, Dir(["y"] * 4).read)
    assert len(listings) == 2
    big = listings.page(3, 0, Dir(["z"] * 50).read)
    assert len(listings) == 1  # the older two dropped; the new one held, though over the bound
    assert listings.page(3, big.cookie + big.step, Dir([]).read).names == ["z"] * 50
    fresh = Dir(["x", "x2"])
    listings.page(1, small.cookie + small.step, fresh.read)
    assert fresh.reads == 1  # gone: listed again


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=60))
def test_a_reader_whose_listing_is_kept_always_reads_it(steps):
    """Readers of four directories start and continue reads in any order; a continued read is
    served from its own listing while the table holds it, and never from another one."""
    listings = Listings(slots=3)
    dirs = {ino: Dir([".", "..", *(f"{ino}-{n}" for n in range(5))]) for ino in range(4)}
    readers: dict[int, tuple[int, list[str]]] = {}  # ino -> (cookie, the names its read started with)
    for ino, restart in steps:
        d = dirs[ino]
        d.names = d.names + [f"{ino}-new{len(d.names)}"]  # every directory grows all the time
        if restart or ino not in readers:
            page = listings.page(ino, 0, d.read)
            readers[ino] = (page.cookie, list(page.names))
            continue
        cookie, names = readers[ino]
        reads = d.reads
        page = listings.page(ino, cookie + SLOTS, d.read)
        assert page.index == decode(cookie)[1] + 1
        assert all(name.startswith(f"{ino}-") for name in page.names[2:])
        if d.reads == reads:  # still held: the listing the read started with
            assert page.names == names and page.cookie == cookie + SLOTS
        readers[ino] = (page.cookie, list(page.names))
