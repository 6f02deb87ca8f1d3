-- The reward model's latest verdict on each scored pair and how unsure it is: the pair's newest
-- reward_scores row (by created_at, then score id, as `charter merge` picks it for
-- max_rm_uncertainty), beside the human majority where people labelled the pair. The input of
-- the rm-uncertain review queue and the report's uncertainty tables.
--
-- Columns:
--   pair_id: the pair
--   prompt_id: its conversation
--   checkpoint: the reward checkpoint that scored it last
--   members: the ensemble's members (1: a single model, whose spread is 0)
--   p_first: the members' mean P(first response by id better)
--   p_first_std: its spread over the members, the uncertainty
--   rm_vote: 'first', 'second' or 'tie' by p_first
--   human_vote: the human majority vote (human_majority); NULL without people or a majority
--   rm_correct: whether rm_vote is a decisive human_vote (a reward-model tie is a miss); NULL
--     where the human majority is not 'first' or 'second'
create view reward_uncertainty as
with latest as (
    select pair_id,
           arg_max({'prompt_id': prompt_id, 'checkpoint': checkpoint, 'members': members,
                    'p_first': p_first, 'p_first_std': p_first_std}, (created_at, score_id)) as row
    from reward_scores
    group by pair_id
), voted as (
    select pair_id, unnest(row),
           case when abs(row.p_first - 0.5) <= 1e-9 then 'tie'
                when row.p_first > 0.5 then 'first' else 'second' end as rm_vote
    from latest
)
select v.pair_id, v.prompt_id, v.checkpoint, v.members, v.p_first, v.p_first_std, v.rm_vote,
       h.majority_vote as human_vote,
       case when h.majority_vote in ('first', 'second') then v.rm_vote = h.majority_vote end as rm_correct
from voted v left join human_majority h on v.pair_id = h.pair_id;
