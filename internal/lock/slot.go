package lock

import (
	"strings"
	"sync"
)

// Redis Cluster places every key in one of slotCount hash slots, and a Lua
// script may only touch keys of one slot. These helpers compute a key's slot
// as Redis does, so that keys a script uses beside "lock:NAME" can be put in
// the same slot.

// slotCount is the number of Redis Cluster hash slots.
const slotCount = 16384

// crc16Table is the byte-at-a-time table of the CRC16 Redis Cluster uses
// (XMODEM: polynomial 0x1021, initial value 0). It is written here because
// neither the standard library nor go-redis exports it.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16Update(crc uint16, b byte) uint16 {
	return crc<<8 ^ crc16Table[byte(crc>>8)^b]
}

// keySlot returns the Redis Cluster hash slot of key. Like Redis, it hashes
// only the part between the first '{' and the first '}' after it, when that
// part is not empty, so that "{user1}.a" and "{user1}.b" share a slot.
func keySlot(key string) uint16 {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc = crc16Update(crc, key[i])
	}
	return crc % slotCount
}

// slotTags holds, for each slot, the shortest string over tagAlphabet (the
// first in counting order) that hashes to it. It is built on first use; the
// search covers every slot with tags of at most three characters and takes
// 1 to 2 ms (BenchmarkBuildSlotTags).
var slotTags = sync.OnceValue(buildSlotTags)

// tagAlphabet has no '{' or '}', so a tag placed inside braces is the
// whole hash tag.
const tagAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// buildSlotTags counts through all strings over tagAlphabet, one length at a
// time, until every slot has a tag.
func buildSlotTags() []string {
	tags := make([]string, slotCount)
	left := slotCount
	var buf []byte
	for length := 1; ; length++ {
		buf = append(buf, 0)
		total := 1
		for range length {
			total *= len(tagAlphabet)
		}
		for i := range total {
			var crc uint16
			for j, k := 0, i; j < length; j, k = j+1, k/len(tagAlphabet) {
				buf[j] = tagAlphabet[k%len(tagAlphabet)]
				crc = crc16Update(crc, buf[j])
			}
			if s := crc % slotCount; tags[s] == "" {
				tags[s] = string(buf)
				if left--; left == 0 {
					return tags
				}
			}
		}
	}
}

// slotTag returns a short string without braces whose slot is slot, which
// must be below slotCount.
func slotTag(slot uint16) string {
	return slotTags()[slot]
}

// sharedKey returns prefix followed by a hash tag that puts the key in the
// slot of the lock named name, whatever braces the name holds. Keys shared by
// all names of a slot (such as a per-slot fence counter) then sit beside
// "lock:NAME", so one Lua script can touch both on Redis Cluster, and there
// are at most slotCount of them rather than one per name ever used. prefix
// must contain no '{', or its brace would start the hash tag.
func sharedKey(prefix, name string) string {
	return prefix + "{" + slotTag(keySlot(KeyPrefix+name)) + "}"
}
