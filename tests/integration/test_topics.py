"""The tables' changelogs, made before Faust starts, on the real broker."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.settings import Settings
from app.topic_admin import TopicLayoutError, ensure_changelogs

pytestmark = pytest.mark.integration


async def test_changelogs_are_made_compacted_listed_at_once_and_checked(stack: Settings) -> None:
    wanted = {"mv-registry-changelog": 4, "mv-views-changelog": 4}
    await ensure_changelogs(stack, wanted)
    await ensure_changelogs(stack, wanted)  # a second worker's start finds them and agrees

    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(wanted))
        assert {d["topic"]: len(d["partitions"]) for d in described} == wanted
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
        configs = await admin.describe_configs(resources)
        policies = {
            resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
            for response in configs
            for resource in response.resources
        }
        assert policies == {name: "compact" for name in wanted}

        # A changelog left from another partition count cannot back its table: said at start.
        await admin.create_topics([NewTopic("mv-old-changelog", 2, 1)])
    finally:
        await admin.close()
    with pytest.raises(TopicLayoutError, match="mv-old-changelog"):
        await ensure_changelogs(stack, {"mv-old-changelog": 4})
