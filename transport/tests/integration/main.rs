//! Integration tests of folio-transport against real servers: RabbitMQ and SeaweedFS (S3), as
//! started by `scripts/services/start` (`folio_test_support::services` says how they are found
//! and when tests skip), plus a check that `deploy/rabbitmq/definitions.json` declares the topology the code declares.

mod amqp;
mod definitions;
mod s3;
mod support;

use folio_test_support::services as env;
