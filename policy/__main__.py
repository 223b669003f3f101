"""The gpuscale CrossGuard policy pack: `pulumi preview --policy-pack policy --policy-pack-config FILE`.

The rules are `gpuscale.policy.rules`, the same functions `gpuscale plan` runs offline; write FILE with
`gpuscale policy-config --stack STACK`, which carries the stack's `gpuscale:policy` (levels, budget, accepted
findings) to the pack.
"""

from pulumi_policy import PolicyPack

from gpuscale.policy.pack import DEFAULT_LEVEL, PACK_NAME, policies

PolicyPack(name=PACK_NAME, enforcement_level=DEFAULT_LEVEL, policies=policies())
