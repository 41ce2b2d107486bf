package wire

// PathMembers is where a store asks HQ for one member's state now (store
// credential): GET PathMembers + id → MemberLookup; unknown id → 404
// "not_found". A till asks when a member is identified at it and HQ can be
// reached, so its balances are HQ's of this moment, not of its last pull:
// with the identity feed (hq serve --member-feed identity) the feed carries
// only enrolments, tier changes and flags, and a member's balance changes
// reach a till this way.
const PathMembers = "/v1/members/"

// MemberLookup is HQ's answer to a member lookup: the member's state and,
// read in the same snapshot, HQ's acked mark of each till of the asking
// store. The state holds exactly the till entries up to those marks, so a
// till applies it only when its own acked marks are the same (otherwise an
// entry would be counted twice or not at all) and keeps its own view
// otherwise.
type MemberLookup struct {
	Member MemberState       `json:"member"`
	Acked  map[string]uint64 `json:"acked"`
}
