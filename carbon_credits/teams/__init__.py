"""Teams (机构账户) and friend links (issue 25)."""
