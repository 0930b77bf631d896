import { useTestMysql } from "../support/mariadb.js";
import { typedTopicsSuite } from "./typed-topics-suite.js";

const mysql = useTestMysql();
typedTopicsSuite("mysql", (name) => mysql().database(name));
