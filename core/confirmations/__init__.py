"""Single-use confirmation tokens: the second step of an action that moves money on an agent's word."""
